"""Shared fixtures: the independent phi^4 reference values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: Independently computed reference values (a copy of the project's shared/reference file).
REFERENCE = Path(__file__).resolve().parent / "data" / "phi4_exact.json"


@pytest.fixture(scope="session")
def phi4_reference():
    """Map ``(L, beta, g) -> {observable: (mean, err)}`` from shared/reference, if present."""
    if not REFERENCE.exists():
        pytest.skip(f"reference values not found at {REFERENCE}")
    points = json.loads(REFERENCE.read_text())["points"]
    return {
        (p["L"], p["beta"], p["g"]): {
            k: (v["mean"], v["err"]) for k, v in p.items() if isinstance(v, dict)
        }
        for p in points
    }
