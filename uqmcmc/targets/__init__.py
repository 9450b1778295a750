"""Physical targets: exact action, gradient and observables.

A target is anything with ``action(x)`` and ``grad(x)`` (see :class:`Target`).
"""

from uqmcmc.targets.analytic import DoubleWell, Gaussian
from uqmcmc.targets.base import Target, check_target, default_observables, logdensity_fn
from uqmcmc.targets.phi4 import Phi4, binder, correlation_length, susceptibility

__all__ = [
    "Target",
    "Phi4",
    "Gaussian",
    "DoubleWell",
    "check_target",
    "default_observables",
    "logdensity_fn",
    "susceptibility",
    "binder",
    "correlation_length",
]
