"""Kernels and the chain driver."""

from uqmcmc.mcmc.batched import batched, split_batched
from uqmcmc.mcmc.checkerboard import as_top_level_api as checkerboard
from uqmcmc.mcmc.driver import run_chains

__all__ = ["batched", "checkerboard", "run_chains", "split_batched"]

from uqmcmc.mcmc import acceptance
from uqmcmc.mcmc.acceptance import RULES, NoisyInfo, NoisyState, check_noise
from uqmcmc.mcmc.estimators import (
    QUADRATURE,
    DeltaEstimate,
    EnergyDelta,
    ExactDelta,
    GradientDelta,
    NoisyOracle,
)
from uqmcmc.mcmc.mala import as_top_level_api as mala
from uqmcmc.mcmc.rmh import as_top_level_api as rmh

__all__ += [
    "rmh",
    "mala",
    "ExactDelta",
    "NoisyOracle",
    "EnergyDelta",
    "GradientDelta",
    "DeltaEstimate",
    "QUADRATURE",
    "RULES",
    "NoisyState",
    "NoisyInfo",
    "check_noise",
    "acceptance",
]
