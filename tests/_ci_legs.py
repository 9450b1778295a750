"""CI runs the whole suite twice, on Python 3.11 (leg 1: ArviZ 0.x, older jax and numpy) and on
the newest Python >= 3.12 (leg 2: ArviZ 1.x). A few end-to-end runs that cost minutes and
exercise no code that differs between the two lines run on one leg only, split so that every
CI run runs each of them once; ``UQMCMC_ALL_LEGS=1`` runs all of them on any Python."""

from __future__ import annotations

import os
import sys

import pytest

#: This Python's leg: 1 below 3.12, else 2.
LEG = 1 if sys.version_info < (3, 12) else 2
#: Every test runs here, whatever the leg.
ALL = os.environ.get("UQMCMC_ALL_LEGS") == "1"


def runs_here(leg: int) -> bool:
    """Whether a test given to ``leg`` runs on this Python."""
    return ALL or leg == LEG


def ci_leg(leg: int, what: str) -> pytest.MarkDecorator:
    """Skip unless this is CI's leg ``leg`` (or ``UQMCMC_ALL_LEGS=1``); ``what``: the run."""
    return pytest.mark.skipif(
        not runs_here(leg),
        reason=f"CI time: {what} runs on CI's leg {leg} (UQMCMC_ALL_LEGS=1 runs it here)",
    )
