"""Acceptance rules for a noisy ``Delta S`` and the Metropolis step shared by ``rmh`` and ``mala``.

``log a = min(0, -Delta S-hat - u + log q(x | x') - log q(x' | x))`` with the penalty ``u``:

``"none"``
    ``u = 0``. With a noisy estimate the noise inflates acceptance and biases observables.
``"ceperley-dewing"``
    ``u = sigma**2 / 2`` with ``sigma**2`` the variance of the estimate (exact on average when
    ``Delta S-hat ~ N(Delta S, sigma**2)`` with fresh noise at every evaluation; Ceperley &
    Dewing, J. Chem. Phys. 110, 9812, 1999).
``"ceperley-dewing-estimated"``
    The variance is itself estimated from ``n`` draws (``chi**2``, the sample variance of their
    mean): ``u_B = -ln 0F1(; m; -m chi**2 / 2)`` with ``m = (n - 1) / 2``, the closed form of
    ``chi**2/2 + chi**4/(4(n+1)) + chi**6/(3(n+1)(n+3)) + ...``, so that ``exp(-u_B)`` is an
    unbiased estimator of ``exp(-sigma**2/2)``. Valid only below the first zero of ``0F1`` (and
    where float32 evaluates it accurately, see :func:`estimated_penalty_limit`); beyond, the
    estimator of the acceptance factor is negative, the move is rejected and ``Info.out_of_range``
    counts it. The rule is approximate (a detailed-balance error of about 1.5% at ``n = 5``,
    ``sigma = 1`` was measured).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.mcmc import proposal
from scipy.special import gammaln

from uqmcmc import _arviz
from uqmcmc.mcmc.estimators import Cache, DeltaEstimate

Array = jax.Array

__all__ = [
    "RULES",
    "NoisyState",
    "NoisyInfo",
    "check_acceptance",
    "penalty_rule",
    "resolve_penalty",
    "switch_penalty",
    "estimated_penalty",
    "estimated_penalty_limit",
    "init_state",
    "metropolis_step",
    "check_noise",
]

#: The acceptance rule names.
RULES = ("none", "ceperley-dewing", "ceperley-dewing-estimated")

# float32 evaluates the alternating 0F1 series to an absolute error of about 4e-7 times its
# largest term; the valid range is cut where that term exceeds this (abs. error ~ 4e-5).
_MAX_TERM = 100.0


# -- state, info and the Metropolis step ------------------------------------------------------
class NoisyState(NamedTuple):
    """State of the noise-aware kernels: the position and the estimator's cache there.

    ``logdensity`` (``-S``, or ``-S-bar`` of an energy surrogate in ``mean`` mode) is available
    when the estimator knows it; otherwise reading it raises ``AttributeError`` (so
    ``hasattr(state, "logdensity")`` is ``False`` and ``run_chains`` records no ``lp``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta, GradientDelta
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> state = init_state(jnp.ones(2), ExactDelta(target), with_grad=True)
    >>> state.position.tolist(), float(state.logdensity), state.cache.grad.tolist()
    ([1.0, 1.0], -1.0, [1.0, 1.0])
    >>> class ExactGrad:  # a gradient "surrogate": no action, so no log-density
    ...     def predict_mean_var(self, x):
    ...         return target.grad(x), jnp.zeros_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.broadcast_to(target.grad(x), (n, *x.shape))
    >>> hasattr(init_state(jnp.ones(2), GradientDelta(ExactGrad()), with_grad=True), "logdensity")
    False
    """

    position: Array
    cache: Cache

    @property
    def logdensity(self) -> Array:
        if self.cache.logdensity is None:
            raise AttributeError("this estimator knows no log-density at the position")
        return self.cache.logdensity


class NoisyInfo(NamedTuple):
    """Per-step statistics of the noise-aware kernels.

    acceptance_rate
        ``min(1, exp(log a))`` of the proposal (0 when it was rejected outright).
    is_accepted
        Whether the proposal was accepted.
    delta_mean
        The estimate ``Delta S-hat`` of the proposal.
    delta_var
        Its variance: zero (exact), known (oracle), propagated through the rule's weights
        (``mean`` mode) or the sample variance of the mean of the draws (``draws`` mode); the
        estimator's ``variance`` attribute says which.
    penalty
        The penalty ``u`` (``inf`` where the estimated-variance rule is out of range).
    nonfinite
        A prediction was not finite: the move was rejected.
    out_of_range
        The estimated-variance penalty was outside its valid range: the move was rejected.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import NoisyOracle, rmh
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=0.5)
    >>> alg = rmh(est, step_size=1.0)
    >>> _, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros(2)))
    >>> info._fields
    ('acceptance_rate', 'is_accepted', 'delta_mean', 'delta_var', 'penalty', 'nonfinite',
     'out_of_range')
    >>> float(info.delta_var), float(info.penalty), bool(info.nonfinite)
    (0.25, 0.125, False)
    """

    acceptance_rate: Array
    is_accepted: Array
    delta_mean: Array
    delta_var: Array
    penalty: Array
    nonfinite: Array
    out_of_range: Array


def init_state(position: Array, estimator: Any, with_grad: bool) -> NoisyState:
    """Check ``position`` against ``estimator`` and build the initial :class:`NoisyState`.

    ``with_grad`` caches the estimator's mean gradient (MALA's drift). An integer position is
    cast to float; a position that is not one configuration raises ``ValueError``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Phi4
    >>> state = init_state(jnp.zeros((4, 4), dtype=int), ExactDelta(Phi4(4, 0.5, 1.0)), False)
    >>> state.position.dtype, float(state.logdensity), state.cache.grad is None
    (dtype('float32'), -16.0, True)
    >>> init_state(jnp.zeros((2, 4, 4)), ExactDelta(Phi4(4, 0.5, 1.0)), False)
    Traceback (most recent call last):
        ...
    ValueError: position has shape (2, 4, 4), but the Phi4 expects configurations of shape (4, 4)
    """
    position = jnp.asarray(position)
    if not jnp.issubdtype(position.dtype, jnp.floating):
        position = position.astype(float)
    estimator.check_position(position)
    return NoisyState(position, estimator.init(position, with_grad))


def check_estimator(estimator: Any) -> None:
    """Raise ``TypeError`` unless ``estimator`` has the estimator interface.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta
    >>> from uqmcmc.targets import Gaussian
    >>> check_estimator(ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2))))  # passes silently
    >>> check_estimator(Gaussian(jnp.zeros(2), jnp.eye(2)))  # a target is not an estimator
    Traceback (most recent call last):
        ...
    TypeError: estimator must be a Delta S estimator (...); Gaussian has no `init`
    """
    for name in ("init", "estimate", "check_position"):
        if not callable(getattr(estimator, name, None)):
            raise TypeError(
                f"estimator must be a Delta S estimator (ExactDelta, NoisyOracle, EnergyDelta, "
                f"GradientDelta); {type(estimator).__name__} has no `{name}`"
            )


def metropolis_step(
    rng_key: Array,
    state: NoisyState,
    proposed: NoisyState,
    estimate: DeltaEstimate,
    penalty: Callable[[Array], tuple[Array, Array]],
    log_q_ratio: Array | float = 0.0,
) -> tuple[NoisyState, NoisyInfo]:
    """Accept or reject ``proposed`` with ``log a = -Delta S-hat - u + log_q_ratio``.

    ``log_q_ratio = log q(x | x') - log q(x' | x)`` (zero for a symmetric proposal). A
    non-finite estimate or an out-of-range penalty rejects the move.

    Examples
    --------
    A downhill estimate is accepted for sure unless its penalty outweighs it; a non-finite one
    is rejected and counted.

    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import DeltaEstimate
    >>> from uqmcmc.mcmc.estimators import Cache
    >>> x, x_new = NoisyState(jnp.zeros(2), Cache()), NoisyState(jnp.ones(2), Cache())
    >>> key, rule = jax.random.key(0), penalty_rule("ceperley-dewing")
    >>> downhill = DeltaEstimate(jnp.asarray(-1.0), jnp.asarray(0.5), jnp.asarray(True))
    >>> state, info = metropolis_step(key, x, x_new, downhill, rule)
    >>> state.position.tolist(), bool(info.is_accepted), float(info.penalty)
    ([1.0, 1.0], True, 0.25)
    >>> broken = DeltaEstimate(jnp.asarray(jnp.nan), jnp.asarray(0.0), jnp.asarray(False))
    >>> state, info = metropolis_step(key, x, x_new, broken, rule)
    >>> state.position.tolist(), bool(info.is_accepted), bool(info.nonfinite)
    ([0.0, 0.0], False, True)
    """
    u, valid = penalty(estimate.var)
    ok = estimate.finite & valid
    log_p = jnp.where(ok, proposal.safe_energy_diff(log_q_ratio, estimate.mean + u), -jnp.inf)
    new_state, (accepted, p_accept, _) = proposal.static_binomial_sampling(
        rng_key, log_p, state, proposed
    )
    info = NoisyInfo(
        acceptance_rate=p_accept,
        is_accepted=accepted,
        delta_mean=estimate.mean,
        delta_var=estimate.var,
        penalty=u,
        nonfinite=~estimate.finite,
        out_of_range=~valid,
    )
    return new_state, info


# -- the rules ----------------------------------------------------------------------------------
def check_acceptance(acceptance: Any) -> Any:
    """Return ``acceptance`` if it is one of :data:`RULES` or a penalty function, else raise
    ``ValueError``.

    Examples
    --------
    >>> check_acceptance("ceperley-dewing")
    'ceperley-dewing'
    >>> check_acceptance("barker")
    Traceback (most recent call last):
        ...
    ValueError: acceptance must be one of ['none', 'ceperley-dewing', 'ceperley-dewing-estimated'],
    got 'barker'
    """
    if callable(acceptance):
        return acceptance
    if acceptance not in RULES:
        raise ValueError(f"acceptance must be one of {list(RULES)}, got {acceptance!r}")
    return acceptance


def penalty_rule(
    acceptance: str, n_draws: int | None = None
) -> Callable[[Array], tuple[Array, Array]]:
    """The penalty function ``var -> (u, valid)`` of an acceptance rule.

    Parameters
    ----------
    acceptance
        ``"none"``, ``"ceperley-dewing"`` or ``"ceperley-dewing-estimated"``.
    n_draws
        Draws behind the sample variance (the estimator's ``n_draws``); the estimated rule
        needs ``n_draws >= 2``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> u, valid = penalty_rule("ceperley-dewing")(jnp.asarray(2.0))
    >>> float(u), bool(valid)
    (1.0, True)
    """
    check_acceptance(acceptance)
    if acceptance == "none":
        return lambda var: (jnp.zeros_like(var), jnp.ones_like(var, dtype=bool))
    if acceptance == "ceperley-dewing":
        return lambda var: (0.5 * var, jnp.ones_like(var, dtype=bool))
    if n_draws is None or isinstance(n_draws, bool) or int(n_draws) != n_draws or n_draws < 2:
        raise ValueError(
            "acceptance='ceperley-dewing-estimated' needs a sample variance from n_draws >= 2 "
            f"draws (an estimator with mode='draws' or NoisyOracle(n_draws=...)), got "
            f"n_draws={n_draws!r}"
        )
    return functools.partial(estimated_penalty, n=int(n_draws))


def resolve_penalty(
    acceptance: str | Callable[[Array], tuple[Array, Array]], n_draws: int | None = None
) -> Callable[[Array], tuple[Array, Array]]:
    """The penalty function of ``acceptance``: a rule name (:func:`penalty_rule`) or already a
    function ``var -> (u, valid)`` (returned as is). What the kernels call.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> float(resolve_penalty("ceperley-dewing")(jnp.asarray(2.0))[0])
    1.0
    >>> half = lambda var: (0.25 * var, var >= 0)  # a custom penalty passes through
    >>> resolve_penalty(half) is half
    True
    """
    if callable(acceptance):
        return acceptance
    return penalty_rule(acceptance, n_draws)


def switch_penalty(
    acceptance: str, n_draws: int | None, on: Array | bool
) -> Callable[[Array], tuple[Array, Array]]:
    """The penalty of ``acceptance`` where ``on``, no penalty (``"none"``) elsewhere.

    ``on`` may be traced, so the naive and penalised versions of one kernel can run side by
    side in one compiled program (:func:`uqmcmc.mcmc.batched` over ``on = [False, True]``).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> var = jnp.asarray(2.0)
    >>> u, valid = jax.vmap(lambda on: switch_penalty("ceperley-dewing", None, on)(var))(
    ...     jnp.array([False, True]))
    >>> u.tolist(), valid.tolist()
    ([0.0, 1.0], [True, True])
    >>> u, valid = switch_penalty("ceperley-dewing-estimated", 5, False)(jnp.asarray(99.0))
    >>> float(u), bool(valid)  # off: out of the estimated rule's range does not matter
    (0.0, True)
    """
    rule = penalty_rule(acceptance, n_draws)

    def penalty(var: Array) -> tuple[Array, Array]:
        u, valid = rule(var)
        return jnp.where(on, u, 0.0), jnp.where(on, valid, True)

    return penalty


@functools.cache
def _series_plan(n: int) -> tuple[float, float, int]:
    """``(m, y_max, K)``: ``0F1(; m; -y)`` by ``K`` series terms is accurate in float32 and
    positive for ``0 <= y <= y_max`` (below its first zero)."""
    m = (n - 1) / 2
    # above the first zero j_{m-1,1}^2 / 4, or far out where exp(-u_B) < 1e-4 anyway
    y_hi = min((m + 2.0 * m ** (1 / 3) + 3.0) ** 2 / 4, 10.0 * m + 10.0)
    k = np.arange(1, int(math.e * math.sqrt(y_hi)) + 60)
    y = np.linspace(0.0, y_hi, 4001)[1:]
    log_terms = k * np.log(y)[:, None] - (gammaln(m + k) - gammaln(m)) - gammaln(k + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        f = 1.0 + np.sum((-1.0) ** k * np.exp(log_terms), axis=1)
    bad = (f <= 0) | (log_terms.max(axis=1) > math.log(_MAX_TERM))
    y_max = float(y[np.argmax(bad) - 1]) if bad.any() else float(y[-1])
    at_max = k * math.log(y_max) - (gammaln(m + k) - gammaln(m)) - gammaln(k + 1)
    n_terms = int(k[np.nonzero(at_max > math.log(1e-10))[0][-1]]) + 1
    return m, y_max, n_terms


def estimated_penalty_limit(n: int) -> float:
    """The largest ``chi**2`` at which :func:`estimated_penalty` is valid for ``n`` draws.

    It is the first zero of ``0F1(; m; -m chi**2 / 2)`` (about 5.4 at ``n = 10``, tending to
    ``n / 4``) for ``n`` up to about 40; above, float32 cannot evaluate the alternating series
    near the zero and the range is cut near ``chi**2 = 13-14``, where ``exp(-u_B) < 1e-3``.

    Examples
    --------
    >>> round(estimated_penalty_limit(10), 1)
    5.4
    """
    m, y_max, _ = _series_plan(int(n))
    return 2.0 * y_max / m


def estimated_penalty(chi2: Array, n: int) -> tuple[Array, Array]:
    """Ceperley-Dewing penalty from a variance ``chi2`` estimated from ``n`` draws.

    ``u_B = -ln 0F1(; m; -m chi2 / 2)``, ``m = (n - 1) / 2``; ``valid`` is ``False`` (and
    ``u_B = inf``: reject) beyond :func:`estimated_penalty_limit`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> u, valid = estimated_penalty(jnp.asarray(0.1), n=10)
    >>> round(float(u), 5), round(0.1 / 2 + 0.1**2 / 44 + 0.1**3 / (3 * 11 * 13), 5)
    (0.05023, 0.05023)
    """
    m, y_max, n_terms = _series_plan(int(n))
    chi2 = jnp.asarray(chi2)
    y = 0.5 * m * chi2
    k = jnp.arange(1, n_terms + 1, dtype=y.dtype)
    terms = jnp.cumprod(-y[..., None] / ((m + k - 1) * k), axis=-1)
    f = 1.0 + jnp.sum(terms, axis=-1)
    valid = (chi2 >= 0) & (y <= y_max) & (f > 0)
    return jnp.where(valid, -jnp.log(jnp.where(valid, f, 1.0)), jnp.inf), valid


# -- after a run --------------------------------------------------------------------------------
def _delta_var(run: Any) -> np.ndarray:
    if hasattr(run, "children") or callable(getattr(run, "groups", None)):
        run = _arviz.group(run, "sample_stats")  # InferenceData / DataTree
    if isinstance(run, Mapping) or hasattr(run, "data_vars"):
        run = run["delta_var"]  # sample_stats Dataset, a dict, an Info's _asdict()
    elif hasattr(run, "delta_var"):
        run = run.delta_var  # a (stacked) NoisyInfo
    return np.asarray(run, dtype=float)


def check_noise(run: Any, threshold: float = 2.0) -> float:
    """Typical standard deviation of ``Delta S-hat`` in a run; warn if it exceeds ``threshold``.

    Call it outside ``jit`` after a run (the kernels cannot warn from inside compiled code).
    The typical sigma is the square root of the median of ``delta_var``. Above ~2 acceptance
    collapses: at ``Delta S = 0`` the mean Ceperley-Dewing acceptance is ``2 Phi(-sigma / 2)``
    (0.62 at sigma = 1, 0.32 at 2, 0.13 at 3).

    Parameters
    ----------
    run
        InferenceData/DataTree with ``sample_stats.delta_var``, a ``sample_stats`` dataset or
        dict, a stacked :class:`NoisyInfo`, or the ``delta_var`` array itself.
    threshold
        Warn (one ``UserWarning``) when the typical sigma exceeds this.

    Returns
    -------
    float
        The typical sigma (``nan`` if no finite variance was recorded).

    Examples
    --------
    >>> import numpy as np
    >>> check_noise(np.full((4, 100), 0.25))
    0.5
    """
    values = _delta_var(run)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    sigma = float(np.sqrt(max(float(np.median(values)), 0.0)))
    if sigma > threshold:
        accept = math.erfc(sigma / (2 * math.sqrt(2)))  # 2 Phi(-sigma/2)
        warnings.warn(
            f"the typical standard deviation of the Delta S estimate is {sigma:.3g} > "
            f"{threshold:g}: the penalised acceptance collapses (mean acceptance at Delta S = 0 "
            f"is 2 Phi(-sigma/2) = {accept:.2g}). Shrink the step size or use a better model.",
            UserWarning,
            stacklevel=2,
        )
    return sigma
