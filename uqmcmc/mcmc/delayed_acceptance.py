"""Delayed acceptance: a surrogate sub-chain proposes, the exact action corrects.

Christen & Fox (2005), with a sub-chain of ``substeps = k`` surrogate steps as the proposal
(multilevel delayed acceptance, MLDA / tinyDA style). One step from ``x``:

1. **Sub-chain.** ``k`` steps of surrogate MALA (:data:`~uqmcmc.mcmc.mala.LANGEVIN`) or random
   walk (:data:`~uqmcmc.mcmc.rmh.RANDOM_WALK`), each accepted by the plain Metropolis rule on
   the surrogate's deterministic ``Delta S-bar`` (:func:`~uqmcmc.mcmc.metropolis.
   build_metropolis_kernel` with :class:`~uqmcmc.mcmc.NoPenalty`), end at ``y``. A non-finite
   prediction rejects that sub-step (counted in ``Info.nonfinite``).
2. **Correction.** ``y`` is accepted with ``min(1, exp(log a))``, ``log a`` below, from one
   exact action ``S(y)`` (``S(x)`` is kept in the state). When the sub-chain did not move
   (``y == x``, e.g. a rejected ``k = 1`` proposal), ``a = 1`` and no exact action is
   evaluated (``lax.cond``; under ``vmap`` both branches run, ``Info.exact_evaluations``
   counts the needed ones). A non-finite ``S(y)`` rejects ``y``.

Which correction
----------------
``"short"`` (an **energy** surrogate, whose estimator caches a log-density ``-S-bar``, e.g.
``EnergyDelta(backend, mode="mean")``): ``log a = -(S(y) - S(x)) + (S-bar(y) - S-bar(x))``.
Each sub-step is reversible with respect to ``exp(-S-bar)``, so is their ``k``-fold product
``K^k`` (``p(x) K^k(x, y) = p(y) K^k(y, x)``). The proposal ratio of ``K^k`` is therefore
``exp(-S-bar(x) + S-bar(y))`` and the Metropolis-Hastings ratio for ``exp(-S)`` is the short
form above: exact for any ``k`` and any surrogate.

``"general"`` (a **gradient** surrogate, ``GradientDelta(backend, mode="mean")``: the predicted
``grad S`` need not be conservative, so no density exists and the sub-chain's stationary law
is unknown): ``k = 1`` only, with Christen & Fox's second-stage ratio. The first stage accepts
``x -> y`` with ``a1(x, y) = min(1, exp(-Delta S-hat(x, y)) q(x | y) / q(y | x))``, a
deterministic function of ``(x, y)``; the effective proposal is ``q*(y | x) = a1(x, y)
q(y | x)``, and Metropolis-Hastings with ``q*`` gives

``log a = -(S(y) - S(x)) + log q(x | y) - log q(y | x) + log a1(y, x) - log a1(x, y)``,

exact whatever ``a1`` is. The reverse first-stage acceptance ``a1(y, x)`` needs one more
surrogate estimate ``Delta S-hat(y, x)`` (from ``y`` back to ``x``; non-finite means
``a1(y, x) = 0``: rejected). For an antisymmetric rule (``simpson``, ``trapezoid``) it reduces
to the short form; for ``first-order`` it does not. Sub-chains with ``k > 1`` on a gradient
surrogate raise ``ValueError``: their transition density (over all accept/reject paths) is
intractable, and the short form is not valid without a density.

The surrogate must be deterministic (an exact estimator, or ``mode="mean"``; a ``"known"`` or
``"sample"`` variance or ``mode="draws"`` is refused): a random ``Delta S-hat`` makes neither
``K`` reversible nor ``a1`` a function of ``(x, y)``.

Uncertainty in the loop
-----------------------
``step_rule`` (MALA sub-chains) makes each sub-step's step a function of the sub-chain's
current state, e.g. :class:`~uqmcmc.mcmc.local_step.VarianceCappedStep`: smaller where the
surrogate's predicted variance is large. Each sub-step then proposes with its own state's step
and its acceptance uses the reverse step in ``q(x | y)`` with the normalising constants
(:func:`~uqmcmc.mcmc.local_step.local_langevin`), so each sub-step is still reversible for
``exp(-S-bar)`` (the short correction holds for any ``k``) and the general correction's ``q``
densities are exact: the chain stays exact for any rule. A sub-chain *length* chosen from the
state is not offered: ``K^k(x)`` and ``K^k(y)`` would differ and the short correction would be
biased unless moves between different lengths were rejected. ``Info.delta_var`` (the predicted
variance of the surrogate's ``Delta S``) and ``Info.step_size`` (the first sub-step's step)
are recorded, so a report can show whether rejected corrections come where the surrogate said
it was unsure (:func:`uqmcmc.diagnostics.rejections_by_variance`).

BlackJAX layout: :func:`init`, :func:`build_kernel`, :func:`as_top_level_api`;
``delayed_acceptance(target, estimator, step_size, substeps=k, kernel="mala")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm, build_sampling_algorithm
from blackjax.mcmc import proposal as blackjax_proposal

from uqmcmc._validation import positive, positive_int
from uqmcmc.mcmc.checks import check_estimator
from uqmcmc.mcmc.estimators import Cache, GradientDelta
from uqmcmc.mcmc.local_step import StepRule, local_langevin
from uqmcmc.mcmc.mala import LANGEVIN
from uqmcmc.mcmc.metropolis import (
    NoisyInfo,
    NoisyState,
    Proposal,
    build_metropolis_kernel,
    init_state,
)
from uqmcmc.mcmc.penalties import NoPenalty
from uqmcmc.mcmc.rmh import RANDOM_WALK
from uqmcmc.targets.base import check_target

Array = jax.Array
Kernel = Callable[[Array, "DelayedState", Any, Any, Any], tuple["DelayedState", "DelayedInfo"]]

__all__ = [
    "DelayedState",
    "DelayedInfo",
    "PROPOSALS",
    "CORRECTIONS",
    "init",
    "build_kernel",
    "as_top_level_api",
]

#: Sub-chain proposals by name.
PROPOSALS: dict[str, Proposal] = {"mala": LANGEVIN, "rmh": RANDOM_WALK}

#: The second-stage corrections (see the module docstring).
CORRECTIONS = ("auto", "short", "general")

#: Estimator ``variance`` kinds of a random ``Delta S-hat`` (fresh noise at every call).
_RANDOM = ("known", "sample")


class DelayedState(NamedTuple):
    """State of the delayed-acceptance kernel.

    position
        The current configuration ``x``.
    logdensity
        The exact ``-S(x)`` (so ``run_chains`` records it as ``lp``).
    cache
        The surrogate estimator's cache at ``x`` (its ``logdensity`` is ``-S-bar(x)`` for an
        energy surrogate, ``None`` for a gradient surrogate).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import EnergyDelta
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> class Wide:  # an energy surrogate, S-bar = |x|^2 / 4
    ...     def predict_mean_var(self, x):
    ...         e = 0.25 * jnp.sum(x**2, axis=-1)
    ...         return e, jnp.zeros_like(e)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(self.predict_mean_var(x)[0], (n, *x.shape[:-1]))
    >>> state = init(jnp.ones(2), target, EnergyDelta(Wide()))
    >>> float(state.logdensity), float(state.cache.logdensity), state.cache.grad.tolist()
    (-1.0, -0.5, [0.5, 0.5])
    """

    position: Array
    logdensity: Array
    cache: Cache


class DelayedInfo(NamedTuple):
    """Per-step statistics of the delayed-acceptance kernel (one scalar each).

    acceptance_rate
        Probability that the step moves, given the sub-chain: the correction's
        ``min(1, exp(log a))`` when the sub-chain moved, 0 when it did not (what a step-size
        adaptation sees).
    is_accepted
        The sub-chain moved and the correction accepted its end point.
    exact_evaluations
        Exact action evaluations in this step: 1, or 0 when the sub-chain did not move. The
        exact gradient is never evaluated.
    subchain_acceptance
        Mean Metropolis probability of the ``k`` surrogate sub-steps.
    correction_acceptance
        The second-stage ``min(1, exp(log a))`` (1 when the sub-chain did not move).
    delta_exact
        ``S(y) - S(x)`` (0 when the sub-chain did not move).
    delta_surrogate
        The surrogate's ``S-bar(y) - S-bar(x)`` (short correction) or first-stage
        ``Delta S-hat(x, y)`` (general correction, ``k = 1``).
    nonfinite
        Non-finite predictions in this step: surrogate sub-steps rejected for one (and the
        reverse estimate of the general correction), plus 1 for a non-finite exact action.
    nonfinite_exact
        The exact action at the proposal was not finite: the correction rejected it.
    delta_var
        The surrogate's predicted variance of its ``Delta S`` for this proposal (summed over
        the sub-steps; 0 when the sub-chain did not move).
    step_size
        The step of the first sub-step (``step_rule(step_size, x)``, or the step size).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> alg = as_top_level_api(target, ExactDelta(target), 0.3, substeps=4)
    >>> _, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros(2)))
    >>> info._fields[:5]
    ('acceptance_rate', 'is_accepted', 'exact_evaluations', 'subchain_acceptance',
     'correction_acceptance')
    >>> float(info.correction_acceptance), int(info.exact_evaluations)  # exact surrogate
    (1.0, 1)
    """

    acceptance_rate: Array
    is_accepted: Array
    exact_evaluations: Array
    subchain_acceptance: Array
    correction_acceptance: Array
    delta_exact: Array
    delta_surrogate: Array
    nonfinite: Array
    nonfinite_exact: Array
    delta_var: Array
    step_size: Array


def _proposal(kernel: str, step_rule: StepRule | None = None) -> Proposal:
    if kernel not in PROPOSALS:
        raise ValueError(f"kernel must be one of {sorted(PROPOSALS)}, got {kernel!r}")
    if step_rule is None:
        return PROPOSALS[kernel]
    if kernel != "mala":
        raise ValueError(f"step_rule needs kernel='mala' (a Langevin sub-chain), got {kernel!r}")
    if not callable(step_rule):
        raise TypeError(f"step_rule must be callable (step_size, x) -> step, got {step_rule!r}")
    return local_langevin(step_rule)


def _resolve_correction(correction: str, has_density: bool, substeps: int) -> str:
    """The correction to use, or ``ValueError`` for a combination that would not be exact."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if correction == "auto":
        correction = "short" if has_density else "general"
    if correction == "short" and not has_density:
        raise ValueError(
            "the short correction exp(-dS + dS-bar) needs an energy surrogate (an estimator "
            "with a log-density, e.g. EnergyDelta(mode='mean')); a gradient surrogate has none: "
            "use correction='general' with substeps=1"
        )
    if correction == "general" and substeps != 1:
        raise ValueError(
            f"substeps={substeps} needs an energy surrogate and the short correction: the "
            "general (Christen & Fox) ratio of a k > 1 sub-chain is intractable, and a gradient "
            "surrogate has no density; use substeps=1 or an energy surrogate (EnergyDelta)"
        )
    return correction


def _check_deterministic(estimator: Any) -> None:
    kind, mode = getattr(estimator, "variance", None), getattr(estimator, "mode", "mean")
    if kind in _RANDOM or mode != "mean":
        raise ValueError(
            "delayed acceptance needs a deterministic surrogate (an exact estimator, or "
            "EnergyDelta/GradientDelta with mode='mean'); "
            f"{type(estimator).__name__} has variance={kind!r}, mode={mode!r}"
        )


def _log_prob(log_a: Array) -> Array:
    """``min(0, log_a)`` with NaN mapped to ``-inf`` (rejection)."""
    return jnp.where(jnp.isnan(log_a), -jnp.inf, jnp.minimum(log_a, 0.0))


def _short_correction(delta_exact: Array, delta_surrogate: Array) -> Array:
    """``log a = -Delta S + Delta S-bar`` of an energy surrogate's sub-chain."""
    return blackjax_proposal.safe_energy_diff(delta_surrogate, delta_exact)


def _general_correction(
    delta_exact: Array, log_q: Array, log_a1_fwd: Array, log_a1_rev: Array
) -> Array:
    """Christen & Fox: ``-Delta S + log q(x|y) - log q(y|x) + log a1(y,x) - log a1(x,y)``."""
    return blackjax_proposal.safe_energy_diff(log_q + log_a1_rev - log_a1_fwd, delta_exact)


def init(position: Array, target: Any, estimator: Any, kernel: str = "mala") -> DelayedState:
    """Initial state: the position, the exact ``-S`` and the surrogate's cache there.

    Parameters
    ----------
    position
        One configuration (an integer array is cast to float).
    target
        The exact system (``action``, ``grad``).
    estimator
        The surrogate ``Delta S`` estimator.
    kernel
        ``"mala"`` (the cache holds the surrogate's mean gradient) or ``"rmh"``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> state = init(jnp.ones(2), target, ExactDelta(target), kernel="rmh")
    >>> float(state.logdensity), state.cache.grad is None
    (-1.0, True)
    """
    sub = init_state(position, estimator, with_grad=_proposal(kernel).with_grad)
    return DelayedState(sub.position, -target.action(sub.position), sub.cache)


def build_kernel(
    substeps: int = 1,
    kernel: str = "mala",
    correction: str = "auto",
    step_rule: StepRule | None = None,
) -> Kernel:
    """Build ``kernel(rng_key, state, target, estimator, step_size) -> (state, info)``.

    Parameters
    ----------
    substeps
        ``k >= 1``, the static length of the surrogate sub-chain.
    kernel
        The sub-chain's proposal: ``"mala"`` (surrogate Langevin) or ``"rmh"`` (random walk).
    correction
        ``"auto"`` (``"short"`` for an energy surrogate, ``"general"`` for a gradient one),
        ``"short"`` or ``"general"`` (``k = 1`` only); see the module docstring. The choice
        is checked when the kernel is traced (the cache says whether there is a density).
    step_rule
        ``(step_size, x) -> step``: each MALA sub-step's step from its own state (e.g.
        :class:`~uqmcmc.mcmc.local_step.VarianceCappedStep`); ``None``, the step size.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> est, step = ExactDelta(target), jax.jit(build_kernel(substeps=3), static_argnums=(2, 3))
    >>> state = init(jnp.zeros(2), target, est)
    >>> for eps in (0.1, 0.5):  # the step size is a kernel argument
    ...     state, info = step(jax.random.key(0), state, target, est, eps)
    ...     print(float(info.correction_acceptance))
    1.0
    1.0
    """
    substeps = positive_int("substeps", substeps)
    proposal = _proposal(kernel, step_rule)
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    sub_kernel = build_metropolis_kernel(proposal, NoPenalty())
    grad_kwargs = {"with_grad": True} if proposal.with_grad else {}

    def kernel_fn(
        rng_key: Array, state: DelayedState, target: Any, estimator: Any, step_size: Any
    ) -> tuple[DelayedState, DelayedInfo]:
        has_density = state.cache.logdensity is not None
        how = _resolve_correction(correction, has_density, substeps)
        k_sub, k_rev, k_acc = jax.random.split(rng_key, 3)
        start = NoisyState(state.position, state.cache)

        def sub_step(sub: NoisyState, key: Array) -> tuple[NoisyState, NoisyInfo]:
            return sub_kernel(key, sub, estimator, step_size)

        end, sub_info = jax.lax.scan(sub_step, start, jax.random.split(k_sub, substeps))
        moved = jnp.any(sub_info.is_accepted)
        n_bad = jnp.sum(sub_info.nonfinite.astype(jnp.int32))

        if how == "short":
            delta_bar = (-end.cache.logdensity) - (-state.cache.logdensity)
        else:  # general, k = 1: first-stage acceptances in both directions
            delta_bar = sub_info.delta_mean[-1]
            log_q = proposal.log_q_ratio(start, end, step_size)  # log q(x|y) - log q(y|x)
            reverse, _ = estimator.estimate(
                k_rev, end.position, state.position, end.cache, **grad_kwargs
            )
            log_a1_fwd = _log_prob(-delta_bar + log_q)
            log_a1_rev = jnp.where(reverse.finite, _log_prob(-reverse.mean - log_q), -jnp.inf)
            n_bad = n_bad + (moved & ~reverse.finite).astype(jnp.int32)

        # one exact action, only when the sub-chain moved (y == x otherwise: a = 1)
        logdensity_new = jax.lax.cond(
            moved, lambda y: -target.action(y), lambda y: state.logdensity, end.position
        )
        exact_ok = jnp.isfinite(logdensity_new)
        delta_exact = jnp.where(moved, (-logdensity_new) - (-state.logdensity), 0.0)
        if how == "short":
            log_a = _short_correction(delta_exact, delta_bar)
        else:
            log_a = _general_correction(delta_exact, log_q, log_a1_fwd, log_a1_rev)
        log_a = jnp.where(moved, jnp.where(exact_ok, _log_prob(log_a), -jnp.inf), 0.0)
        proposed = DelayedState(end.position, logdensity_new, end.cache)
        new_state, (accepted, p_accept, _) = blackjax_proposal.static_binomial_sampling(
            k_acc, log_a, state, proposed
        )
        nonfinite_exact = moved & ~exact_ok
        info = DelayedInfo(
            acceptance_rate=jnp.where(moved, p_accept, 0.0),
            is_accepted=moved & accepted,
            exact_evaluations=moved.astype(jnp.int32),
            subchain_acceptance=jnp.mean(sub_info.acceptance_rate),
            correction_acceptance=p_accept,
            delta_exact=delta_exact,
            delta_surrogate=jnp.where(moved, delta_bar, 0.0),
            nonfinite=n_bad + nonfinite_exact.astype(jnp.int32),
            nonfinite_exact=nonfinite_exact,
            delta_var=jnp.where(moved, jnp.sum(sub_info.delta_var), 0.0),
            step_size=jnp.asarray(
                step_size if step_rule is None else step_rule(step_size, state.position),
                dtype=state.position.dtype,
            ),
        )
        return new_state, info

    return kernel_fn


def as_top_level_api(
    target: Any,
    estimator: Any,
    step_size: Any,
    substeps: int = 1,
    kernel: str = "mala",
    correction: str = "auto",
    step_rule: StepRule | None = None,
) -> SamplingAlgorithm:
    """Delayed acceptance as a BlackJAX ``SamplingAlgorithm``: exact for any surrogate.

    Parameters
    ----------
    target
        The exact system: ``action(x)`` (evaluated once per moving step) and ``grad(x)``
        (never evaluated by the kernel).
    estimator
        A deterministic surrogate ``Delta S`` estimator: ``EnergyDelta(backend, mode="mean")``
        (any ``substeps``) or ``GradientDelta(backend, mode="mean")`` (``substeps=1``, general
        correction); :class:`~uqmcmc.mcmc.ExactDelta` works too (correction acceptance 1).
    step_size
        The sub-chain's step (MALA: proposal variance ``2 step_size``; RMH: proposal standard
        deviation), ``> 0``; may be a JAX tracer (``run_chains`` can tune it).
    substeps
        ``k``, surrogate steps per exact correction.
    kernel
        ``"mala"`` or ``"rmh"``: the sub-chain's proposal.
    correction
        ``"auto"``, ``"short"`` or ``"general"`` (see the module docstring).
    step_rule
        Optional ``(step_size, x) -> step`` for the MALA sub-steps, a deterministic function of
        the state (e.g. ``VarianceCappedStep(predicted_variance(backend), cap)``); exact for
        any such rule (module docstring).

    Returns
    -------
    SamplingAlgorithm
        ``init(position)`` and ``step(rng_key, state) -> (DelayedState, DelayedInfo)``.

    Raises
    ------
    ValueError
        A random (``draws`` mode or noisy-oracle) estimator, or ``substeps > 1`` with a gradient
        surrogate (at once for :class:`~uqmcmc.mcmc.GradientDelta`, else at ``init``).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import EnergyDelta, GradientDelta
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> class Shifted:  # a poor energy surrogate: wrong centre and curvature
    ...     def predict_mean_var(self, x):
    ...         e = 0.4 * jnp.sum((x - 0.5) ** 2, axis=-1)
    ...         return e, jnp.zeros_like(e)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(self.predict_mean_var(x)[0], (n, *x.shape[:-1]))
    >>> alg = as_top_level_api(target, EnergyDelta(Shifted()), 0.5, substeps=8)
    >>> state, info = jax.jit(alg.step)(jax.random.key(1), alg.init(jnp.zeros(2)))
    >>> int(info.exact_evaluations), bool(0 < info.subchain_acceptance <= 1)
    (1, True)
    >>> class Grad:  # a gradient surrogate: no density, so k = 1 only
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.zeros_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(x, (n, *x.shape))
    >>> as_top_level_api(target, GradientDelta(Grad(), mode="mean"), 0.5, substeps=4)
    Traceback (most recent call last):
        ...
    ValueError: substeps=4 needs an energy surrogate and the short correction: ...
    """
    check_target(target)
    check_estimator(estimator)
    _check_deterministic(estimator)
    positive("step_size", step_size)
    substeps = positive_int("substeps", substeps)
    _proposal(kernel, step_rule)
    if isinstance(estimator, GradientDelta):
        _resolve_correction(correction, False, substeps)
    else:
        _resolve_correction("short" if correction == "auto" else correction, True, substeps)
    step = build_kernel(substeps, kernel, correction, step_rule)

    def init_fn(position: Array, target: Any, estimator: Any) -> DelayedState:
        state = init(position, target, estimator, kernel)
        _resolve_correction(correction, state.cache.logdensity is not None, substeps)
        return state

    return build_sampling_algorithm(
        step, init_fn, target, init_args=(estimator,), kernel_args=(estimator, step_size)
    )
