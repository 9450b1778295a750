"""Uncertainty backends behind one protocol, training, data and calibration.

Every backend has ``fit``, ``predict_mean_var(x) -> (mean, var)``,
``predict_draws(key, x, n)`` (joint draws), ``save(path)`` and ``load(path)``.
"""

from uqmcmc.uq import calibration
from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.bnn import NumPyroBNN
from uqmcmc.uq.data import Dataset, Split, make_dataset
from uqmcmc.uq.deep_kernel import DeepKernelRegression
from uqmcmc.uq.dropout import MCDropout
from uqmcmc.uq.ensemble import DeepEnsemble
from uqmcmc.uq.fixed import FixedDraw
from uqmcmc.uq.last_layer import BayesianLastLayer
from uqmcmc.uq.training import train

__all__ = [
    "UQBackend",
    "DeepEnsemble",
    "MCDropout",
    "BayesianLastLayer",
    "NumPyroBNN",
    "DeepKernelRegression",
    "FixedDraw",
    "Dataset",
    "Split",
    "make_dataset",
    "train",
    "calibration",
]
