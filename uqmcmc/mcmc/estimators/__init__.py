"""Estimators of the action change ``Delta S = S(x') - S(x)`` for a proposed move.

Every estimator has the same small interface, used by both :func:`uqmcmc.mcmc.rmh` and
:func:`uqmcmc.mcmc.mala`:

``init(x, with_grad=False) -> Cache``
    What is kept in the chain state at the current position ``x`` (one configuration): the
    log-density when it is known, the deterministic (mean) gradient of the action for the MALA
    drift when ``with_grad``, the predictive variance in ``mean`` mode.
``estimate(key, x, x_new, cache, with_grad=False) -> (DeltaEstimate, Cache)``
    The estimate of ``S(x_new) - S(x)`` with the variance of that estimate, and the cache at
    ``x_new`` (the kernel keeps it if the move is accepted).
``n_draws``
    Number of draws the variance is estimated from (``None`` when it is not a sample variance);
    the ``"ceperley-dewing-estimated"`` rule needs it.
``variance``
    What ``DeltaEstimate.var`` is: ``"zero"`` (exact), ``"known"`` (the oracle's ``sigma**2``),
    ``"epistemic"`` (the backend's epistemic variance of the deterministic estimate, the
    covariances between its inputs and output elements included, ``mean`` mode; see
    :func:`uqmcmc.uq.base.predict_linear`) or ``"sample"`` (sample variance of the mean of the
    ``n_draws`` joint draws, ``draws`` mode).

All functions are pure and jit-able; ``with_grad`` is a static Python flag (MALA sets it).

The pieces: :mod:`~uqmcmc.mcmc.estimators.delta` (the estimate, the cache, quadrature rules),
:mod:`~uqmcmc.mcmc.estimators.exact` (from a target: exact, noisy oracle) and
:mod:`~uqmcmc.mcmc.estimators.surrogate` (from a UQ backend: energy, gradient).
"""

from uqmcmc.mcmc.estimators.delta import QUADRATURE, Cache, DeltaEstimate, standard_normal
from uqmcmc.mcmc.estimators.exact import ExactDelta, NoisyOracle
from uqmcmc.mcmc.estimators.surrogate import EnergyDelta, GradientDelta

__all__ = [
    "DeltaEstimate",
    "Cache",
    "ExactDelta",
    "NoisyOracle",
    "EnergyDelta",
    "GradientDelta",
    "QUADRATURE",
    "standard_normal",
]
