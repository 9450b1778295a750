"""Kernels and the chain driver: one flat public namespace.

``rmh``, ``mala``, ``checkerboard`` and ``delayed_acceptance`` follow BlackJAX's access
pattern: ``mala(estimator, step_size, acceptance)`` builds the algorithm, ``mala.init`` and
``mala.build_kernel`` are the low-level pieces (the name is a
:class:`~uqmcmc.mcmc._api.SamplingAPI` over the module :mod:`uqmcmc.mcmc.mala`, which it
shadows in this namespace as ``blackjax.mala`` does).

One home per concept: ``Delta S`` estimators (:mod:`~uqmcmc.mcmc.estimators`), penalties
(:mod:`~uqmcmc.mcmc.penalties`, with the ``0F1`` series in :mod:`~uqmcmc.mcmc.hyp0f1`), the
noise-aware Metropolis step and kernel builder (:mod:`~uqmcmc.mcmc.metropolis`), the proposals
(:mod:`~uqmcmc.mcmc.rmh`, :mod:`~uqmcmc.mcmc.mala`), delayed acceptance with surrogate
sub-chains (:mod:`~uqmcmc.mcmc.delayed_acceptance`), position-dependent steps from predicted
variance (:mod:`~uqmcmc.mcmc.local_step`), batched variants
(:mod:`~uqmcmc.mcmc.batched`) and the driver (:mod:`~uqmcmc.mcmc.driver` over
:mod:`~uqmcmc.mcmc.sampling_loop`, :mod:`~uqmcmc.mcmc.adaptation`,
:mod:`~uqmcmc.mcmc.to_arviz`).
"""

from uqmcmc.mcmc import checkerboard as _checkerboard_module
from uqmcmc.mcmc import delayed_acceptance as _delayed_acceptance_module
from uqmcmc.mcmc import mala as _mala_module
from uqmcmc.mcmc import rmh as _rmh_module
from uqmcmc.mcmc._api import SamplingAPI
from uqmcmc.mcmc.batched import BatchedAlgorithm, batch_size, batched, split_batched
from uqmcmc.mcmc.driver import run_chains
from uqmcmc.mcmc.estimators import (
    QUADRATURE,
    DeltaEstimate,
    EnergyDelta,
    ExactDelta,
    GradientDelta,
    NoisyOracle,
)
from uqmcmc.mcmc.local_step import VarianceCappedStep, local_langevin, predicted_variance
from uqmcmc.mcmc.metropolis import NoisyInfo, NoisyState
from uqmcmc.mcmc.penalties import (
    RULES,
    CeperleyDewing,
    CeperleyDewingEstimated,
    NoPenalty,
    Switch,
    as_penalty,
)

rmh = SamplingAPI(_rmh_module)
mala = SamplingAPI(_mala_module)
checkerboard = SamplingAPI(_checkerboard_module)
delayed_acceptance = SamplingAPI(_delayed_acceptance_module)

__all__ = [
    "rmh",
    "mala",
    "checkerboard",
    "delayed_acceptance",
    "run_chains",
    "batched",
    "batch_size",
    "split_batched",
    "BatchedAlgorithm",
    "ExactDelta",
    "NoisyOracle",
    "EnergyDelta",
    "GradientDelta",
    "DeltaEstimate",
    "QUADRATURE",
    "RULES",
    "NoisyState",
    "NoisyInfo",
    "NoPenalty",
    "CeperleyDewing",
    "CeperleyDewingEstimated",
    "Switch",
    "as_penalty",
    "VarianceCappedStep",
    "local_langevin",
    "predicted_variance",
]
