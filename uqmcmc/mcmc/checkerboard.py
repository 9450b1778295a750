"""Checkerboard single-site Metropolis for lattice targets: the exact reference sampler.

One step is one sweep: every site of the even sublattice proposes
``phi_x + step_size * U(-1, 1)`` at once and is accepted on its own local action change, then the
odd sublattice does the same. Sites of one colour do not interact, so the parallel update is
exactly a product of single-site Metropolis moves and satisfies detailed balance.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import blackjax.base
import jax
import jax.numpy as jnp

from uqmcmc._validation import positive
from uqmcmc.mcmc.checks import check_start
from uqmcmc.mcmc.estimators import Cache

Array = jax.Array

__all__ = ["CheckerboardState", "CheckerboardInfo", "init", "build_kernel", "as_top_level_api"]


class CheckerboardState(NamedTuple):
    """Current field and its log-density ``-S``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> state = init(jnp.ones((4, 4)), Phi4(4, 0.25, 1.0))
    >>> state.position.shape, float(state.logdensity)  # S = V (-2 beta + 1) = 8
    ((4, 4), -8.0)
    """

    position: Array
    logdensity: Array


class CheckerboardInfo(NamedTuple):
    """Per-sweep statistics.

    acceptance_rate
        Mean Metropolis probability ``min(1, exp(-dS))`` over the sweep's site updates.
    is_accepted
        Fraction of the sweep's site updates that were accepted (a float, not a bool).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import checkerboard
    >>> from uqmcmc.targets import Phi4
    >>> alg = checkerboard(Phi4(4, 0.5, 1.0), step_size=0.5)
    >>> _, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros((4, 4))))
    >>> info._fields
    ('acceptance_rate', 'is_accepted')
    >>> n_accepted = float(info.is_accepted) * 16  # a fraction of the 16 site updates
    >>> bool(n_accepted == round(n_accepted))
    True
    """

    acceptance_rate: Array
    is_accepted: Array


def init(position: Array, target: Any) -> CheckerboardState:
    """Initial state from a field (cast to float) and the target's action there.

    A field where the action is not finite is refused (``ValueError``, see
    :func:`uqmcmc.mcmc.checks.check_start`): no sweep could ever leave it.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> state = init(jnp.zeros((4, 4), dtype=int), Phi4(4, 0.5, 1.0))
    >>> state.position.dtype, float(state.logdensity)  # S = V g at phi = 0
    (dtype('float32'), -16.0)
    >>> init(jnp.full((4, 4), 1e30), Phi4(4, 0.5, 1.0))  # phi^4 overflows float32
    Traceback (most recent call last):
        ...
    ValueError: the start position has a non-finite action (log-density): ...
    """
    position = jnp.asarray(position, dtype=float)
    logdensity = -target.action(position)
    check_start(Cache(logdensity=logdensity))
    return CheckerboardState(position, logdensity)


def _colour_masks(shape: tuple[int, int]) -> Array:
    i, j = jnp.indices(shape)
    even = (i + j) % 2 == 0
    return jnp.stack([even, ~even])


def build_kernel(target: Any):
    """Build the sweep kernel ``kernel(rng_key, state, step_size) -> (state, info)``.

    ``target`` needs ``action(phi)`` and ``local_delta(phi, proposed)`` (per-site action change
    if that site alone moved), and fields of an even-sized ``L x L`` shape. The step size is
    an argument of the kernel, so one compiled kernel serves several step sizes;
    :func:`as_top_level_api` fixes it.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.5, 1.0)
    >>> kernel = jax.jit(build_kernel(target))
    >>> state = init(jnp.zeros((4, 4)), target)
    >>> for step_size in (0.1, 1.0):
    ...     new, info = kernel(jax.random.key(0), state, step_size)
    ...     print(new.position.shape, bool(0 <= info.acceptance_rate <= 1))
    (4, 4) True
    (4, 4) True
    """

    def kernel(rng_key, state: CheckerboardState, step_size) -> tuple[CheckerboardState, Any]:
        phi = state.position
        masks = _colour_masks(phi.shape[-2:])

        def half_sweep(phi, inputs):
            key, mask = inputs
            k_prop, k_acc = jax.random.split(key)
            proposed = phi + step_size * jax.random.uniform(
                k_prop, phi.shape, minval=-1.0, maxval=1.0
            )
            delta = target.local_delta(phi, proposed)
            log_p = jnp.minimum(0.0, -jnp.where(jnp.isnan(delta), jnp.inf, delta))
            accept = mask & (jnp.log(jax.random.uniform(k_acc, phi.shape)) < log_p)
            n = jnp.sum(mask)
            stats = (jnp.sum(jnp.where(mask, jnp.exp(log_p), 0.0)) / n, jnp.sum(accept) / n)
            return jnp.where(accept, proposed, phi), stats

        phi, (p_acc, frac) = jax.lax.scan(half_sweep, phi, (jax.random.split(rng_key), masks))
        new_state = CheckerboardState(phi, -target.action(phi))
        return new_state, CheckerboardInfo(jnp.mean(p_acc), jnp.mean(frac))

    return kernel


def as_top_level_api(target: Any, step_size: float = 1.0) -> blackjax.base.SamplingAlgorithm:
    """Checkerboard Metropolis sweeps for a lattice target, as a BlackJAX ``SamplingAlgorithm``.

    Parameters
    ----------
    target
        A lattice target with ``action`` and ``local_delta`` (e.g. :class:`uqmcmc.targets.Phi4`);
        the linear size must be even so the two colours alternate across the periodic boundary.
    step_size
        Half-width of the uniform single-site proposal, ``> 0``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> alg = as_top_level_api(Phi4(4, 0.5, 1.0), step_size=1.0)
    >>> state = alg.init(jnp.zeros((4, 4)))
    >>> state, info = jax.jit(alg.step)(jax.random.key(0), state)
    >>> bool(0.0 <= info.is_accepted <= 1.0)
    True
    """
    if not callable(getattr(target, "local_delta", None)):
        raise TypeError(f"checkerboard needs a lattice target with `local_delta`, got {target!r}")
    shape = getattr(target, "shape", None)
    if shape is not None and any(n % 2 for n in shape):
        raise ValueError(f"checkerboard needs even lattice sizes, got shape {shape}")
    positive("step_size", step_size)
    kernel = build_kernel(target)

    def init_fn(position, rng_key=None):
        return init(position, target)

    def step_fn(rng_key, state):
        return kernel(rng_key, state, step_size)

    return blackjax.base.SamplingAlgorithm(init_fn, step_fn)
