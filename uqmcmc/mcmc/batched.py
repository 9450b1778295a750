"""Several variants of one kernel stepped side by side in ONE compiled program.

``batched(params, make_algorithm)`` is a :class:`BatchedAlgorithm` whose position holds one
configuration per variant, ``(K, *shape)``, and whose step runs ``make_algorithm(params[k])``
for every ``k`` under ``jax.vmap``. The variants must share their state structure and differ
only in traced values: the naive and Ceperley-Dewing rules of one estimator
(:class:`~uqmcmc.mcmc.Switch` over ``on = [False, True]``), or one chain set per fixed ensemble
member or posterior draw. :func:`~uqmcmc.mcmc.run_chains` recognises the type, records each
variant's observables and Info fields along a ``variant`` dimension; :func:`split_batched`
turns the run into one ArviZ data per variant.

Running variants together compiles their step once instead of once per variant, and a batch of
``K x chains`` small lattices keeps the CPU busier than ``chains`` alone.

With ``common_key=True`` every variant steps with the SAME key (common random numbers): the
same proposal noise, the same joint draws and the same acceptance uniform, so variants that
differ slightly (a penalty, a noise level) make the same moves until one decision differs.
Each variant still samples its own target exactly as alone (its marginal law is unchanged);
only the variants' joint law changes, which makes the difference between them far less noisy
(a paired comparison, :func:`uqmcmc.diagnostics.paired_differences`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from blackjax.base import SamplingAlgorithm

from uqmcmc import _arviz

__all__ = ["BATCH_DIM", "BatchedAlgorithm", "batched", "batch_size", "split_batched"]

#: Name of the variant dimension in the ArviZ data of a batched run.
BATCH_DIM = "variant"


class BatchedAlgorithm(NamedTuple):
    """``K`` variants of one algorithm stepped together: BlackJAX's ``init``/``step`` plus ``K``.

    init
        ``init(position)`` with ``position`` of shape ``(K, *shape)``.
    step
        ``step(rng_key, state) -> (state, info)``, every Info field with a leading ``K`` axis.
    batch_size
        ``K``, the number of variants (what :func:`~uqmcmc.mcmc.run_chains` reads; wrapping
        ``step`` in ``jax.jit`` keeps it, as it is a field of the algorithm, not of the step).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta, rmh
    >>> from uqmcmc.targets import Gaussian
    >>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
    >>> alg = batched(jnp.array([0.1, 1.0]), lambda eps: rmh(est, eps))  # two step sizes
    >>> isinstance(alg, BatchedAlgorithm), alg.batch_size
    (True, 2)
    >>> jitted = alg._replace(step=jax.jit(alg.step))
    >>> batch_size(jitted), jitted.init(jnp.zeros((2, 2))).position.shape
    (2, (2, 2))
    """

    init: Callable[..., Any]
    step: Callable[[jax.Array, Any], tuple[Any, Any]]
    batch_size: int


def batched(
    params: Any,
    make_algorithm: Callable[[Any], SamplingAlgorithm],
    *,
    common_key: bool = False,
) -> BatchedAlgorithm:
    """One algorithm stepping ``K`` variants at once, variant ``k`` being
    ``make_algorithm(params[k])`` (``params``: a pytree with leading axis ``K``).

    A position is ``(K, *shape)``; the step's Info has a leading ``K`` axis on every field.
    ``common_key``: every variant gets the step's key itself (coupled variants, see the module
    docstring) instead of one split key each (independent variants).

    Examples
    --------
    The naive and the penalised MALA of one noisy estimator, side by side:

    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import CeperleyDewing, NoisyOracle, Switch, mala
    >>> from uqmcmc.targets import Gaussian
    >>> est = NoisyOracle(Gaussian(jnp.zeros(2), jnp.eye(2)), sigma=1.0)
    >>> alg = batched(jnp.array([False, True]),
    ...               lambda on: mala(est, 0.5, Switch(CeperleyDewing(), on)))
    >>> state, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros((2, 2))))
    >>> state.position.shape, info.penalty.tolist(), batch_size(alg)
    ((2, 2), [0.0, 0.5], 2)

    Coupled variants (``common_key=True``): two copies of one rule make identical moves.

    >>> twins = batched(jnp.array([False, False]),
    ...                 lambda on: mala(est, 0.5, Switch(CeperleyDewing(), on)), common_key=True)
    >>> state, _ = twins.step(jax.random.key(1), twins.init(jnp.zeros((2, 2))))
    >>> bool((state.position[0] == state.position[1]).all())
    True
    """
    k = int(jax.tree.leaves(params)[0].shape[0])

    def init(position: jax.Array, rng_key: jax.Array | None = None):
        if position.ndim < 1 or position.shape[0] != k:
            raise ValueError(
                f"a batched algorithm of {k} variants needs positions of shape ({k}, ...), "
                f"got {position.shape}"
            )
        return jax.vmap(lambda p, x: make_algorithm(p).init(x))(params, position)

    def step(rng_key: jax.Array, state: Any):
        if common_key:

            def one(p, s):
                return make_algorithm(p).step(rng_key, s)

            return jax.vmap(one)(params, state)
        keys = jax.random.split(rng_key, k)
        return jax.vmap(lambda p, key, s: make_algorithm(p).step(key, s))(params, keys, state)

    return BatchedAlgorithm(init, step, k)


def batch_size(algorithm: Any) -> int | None:
    """``K`` for a :class:`BatchedAlgorithm` (made by :func:`batched`), else ``None``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import checkerboard
    >>> from uqmcmc.targets import Phi4
    >>> batch_size(checkerboard(Phi4(4, 0.5, 1.0), 1.0)) is None
    True
    """
    return algorithm.batch_size if isinstance(algorithm, BatchedAlgorithm) else None


def split_batched(idata: Any, attrs: Sequence[Mapping[str, Any]]) -> list:
    """One ArviZ data per variant of a batched run, with the run's attrs updated by
    ``attrs[k]`` (one mapping per variant).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import CeperleyDewing, NoisyOracle, Switch, mala, run_chains
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(jnp.zeros(2), jnp.eye(2))
    >>> est = NoisyOracle(target, sigma=1.0)
    >>> alg = batched(jnp.array([False, True]),
    ...               lambda on: mala(est, 0.5, Switch(CeperleyDewing(), on)))
    >>> idata = run_chains(alg, 0, jnp.zeros((4, 2, 2)), 100, target=target, progress=False)
    >>> naive, cd = split_batched(idata, [{"acceptance": "none"},
    ...                                   {"acceptance": "ceperley-dewing"}])
    >>> cd.posterior["x"].shape, cd.posterior.attrs["acceptance"]
    ((4, 100, 2), 'ceperley-dewing')
    >>> float(naive.sample_stats["penalty"].max()), float(cd.sample_stats["penalty"].min())
    (0.0, 0.5)
    """
    post = _arviz.group(idata, "posterior")
    k = post.sizes.get(BATCH_DIM)
    if k is None:
        raise ValueError(f"not a batched run: its posterior has no {BATCH_DIM!r} dimension")
    if len(attrs) != k:
        raise ValueError(f"attrs must have one mapping per variant ({k}), got {len(attrs)}")
    has_stats = _arviz.has_group(idata, "sample_stats")
    stats = _arviz.group(idata, "sample_stats") if has_stats else None
    base = _arviz.attrs(idata)

    def take(ds, i):
        part = ds.isel({BATCH_DIM: i})
        values = {name: np.asarray(part[name].values) for name in part.data_vars}
        dims = {name: list(part[name].dims[2:]) for name in part.data_vars}
        return values, dims

    out = []
    for i, extra in enumerate(attrs):
        values, dims = take(post, i)
        stat_values = None
        if stats is not None:
            stat_values, stat_dims = take(stats, i)
            dims.update(stat_dims)
        out.append(_arviz.make_idata(values, stat_values, dims=dims, attrs={**base, **extra}))
    return out
