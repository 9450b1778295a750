"""Uncertainty backends behind one contract, their registry, training, data and calibration.

Every backend is a :class:`~uqmcmc.uq.base.UQBackend`: ``fit``,
``predict_mean_var(x) -> (mean, var)``, ``predict_draws(key, x, n)`` (joint draws),
``draw_ids`` / ``predict_draw`` (fixed draws), ``save(path)`` and ``load(path)``;
:mod:`uqmcmc.uq.registry` builds and fits them by name.

The names below are imported on first use, so ``import uqmcmc.uq.registry`` (or any other
submodule) does not import every backend (NumPyro only comes with the BNN).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> (module, attribute or ``None`` for the module itself).
_LAZY = {
    "UQBackend": ("uqmcmc.uq.base", "UQBackend"),
    "Predictive": ("uqmcmc.uq.base", "Predictive"),
    "DeepEnsemble": ("uqmcmc.uq.ensemble", "DeepEnsemble"),
    "MCDropout": ("uqmcmc.uq.dropout", "MCDropout"),
    "BayesianLastLayer": ("uqmcmc.uq.last_layer", "BayesianLastLayer"),
    "NumPyroBNN": ("uqmcmc.uq.bnn", "NumPyroBNN"),
    "DeepKernelRegression": ("uqmcmc.uq.deep_kernel", "DeepKernelRegression"),
    "FixedDraw": ("uqmcmc.uq.fixed", "FixedDraw"),
    "Dataset": ("uqmcmc.uq.data", "Dataset"),
    "Split": ("uqmcmc.uq.data", "Split"),
    "train": ("uqmcmc.uq.training", "train"),
    "calibration": ("uqmcmc.uq.calibration", None),
    "registry": ("uqmcmc.uq.registry", None),
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
