"""Kernels and the chain driver."""

from uqmcmc.mcmc.checkerboard import as_top_level_api as checkerboard
from uqmcmc.mcmc.driver import run_chains

__all__ = ["checkerboard", "run_chains"]
