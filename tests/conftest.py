"""Shared fixtures: the independent phi^4 reference values (``tests/data/phi4_exact.json``)."""

from __future__ import annotations

import pytest
from _pytest.doctest import DoctestItem
from _standins import reference_points


@pytest.fixture(scope="session")
def phi4_reference():
    """Map ``(L, beta, g) -> {observable: (mean, err)}`` of the reference file."""
    return {
        (p["L"], p["beta"], p["g"]): {
            k: (v["mean"], v["err"]) for k, v in p.items() if isinstance(v, dict)
        }
        for p in reference_points()
    }


#: Docstring examples that train networks or run a workflow (each >= 2 s on 2 cores): marked
#: ``slow`` like the long tests, so ``pytest -m "not slow"`` is the fast subset.
SLOW_DOCTESTS = {
    "run_compare",
    "per_draw_algorithm",
    "fit_backend",
    "main",
    "make_dataset",
    "train_members",
    "DeepEnsemble",
    "MCDropout",
    "BayesianLastLayer",
    "NumPyroBNN",
    "DeepKernelRegression",
    "EnergyNet",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if isinstance(item, DoctestItem) and item.name.rsplit(".", 1)[-1] in SLOW_DOCTESTS:
            item.add_marker(pytest.mark.slow)
