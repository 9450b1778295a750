"""Run any BlackJAX ``SamplingAlgorithm`` over many chains and return ArviZ data."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from uqmcmc import _arviz
from uqmcmc._meta import versions
from uqmcmc._validation import positive, positive_int, probability
from uqmcmc.mcmc.batched import BATCH_DIM, batch_size

__all__ = ["run_chains"]


def _per_chain_scalars(info: Any, shape: tuple[int, ...]) -> dict[str, jax.Array]:
    """The fields of an Info NamedTuple that hold one scalar per chain (and per variant of a
    batched algorithm): those of shape ``shape``."""
    fields = getattr(info, "_asdict", lambda: {})()
    return {
        name: value
        for name, value in fields.items()
        if isinstance(value, jax.Array) and value.shape == shape
    }


def run_chains(
    algorithm: blackjax.base.SamplingAlgorithm | Callable[[Any], blackjax.base.SamplingAlgorithm],
    key: jax.Array | int,
    initial_positions: jax.Array,
    num_steps: int,
    *,
    warmup: int = 0,
    thin: int = 1,
    target: Any = None,
    observables: Callable[[jax.Array], Mapping[str, jax.Array]] | None = None,
    dims: Mapping[str, list[str]] | None = None,
    step_size: float | None = None,
    target_acceptance: float | None = None,
    record_positions: bool = False,
    num_chunks: int = 20,
    progress: bool = True,
    attrs: Mapping[str, Any] | None = None,
    return_state: bool = False,
):
    """Run many chains of one algorithm with ``vmap`` and chunked ``lax.scan``.

    Parameters
    ----------
    algorithm
        A ``blackjax.base.SamplingAlgorithm`` (``init``, ``step``), or a function
        ``step_size -> SamplingAlgorithm`` whose step size is tuned during warm-up when
        ``target_acceptance`` is given (then ``step_size`` is the starting value).
    key
        A JAX PRNG key, or an integer seed (recorded in the attrs).
    initial_positions
        Array of shape ``(n_chains, *position_shape)``, finite.
    num_steps
        Steps per chain after warm-up; ``num_steps // thin`` draws are kept.
    warmup
        Steps discarded first (and used to tune the step size).
    thin
        Keep every ``thin``-th state.
    target
        Optional target: its ``observables``, ``observable_dims`` and ``params`` are used
        unless ``observables``/``dims`` are given.
    observables
        Function of ONE position returning a dict of arrays, recorded per draw in ``posterior``.
        Default: the target's ``observables``, else the position itself as ``x``. For an
        algorithm made by :func:`~uqmcmc.mcmc.batched` (positions ``(n_chains, K, ...)``) it
        is applied to each variant's position, and every observable and Info field gets a
        leading ``variant`` dimension (:func:`~uqmcmc.mcmc.split_batched` splits the run).
    dims
        ArviZ dims of non-scalar observables, e.g. ``{"G": ["r"]}``.
    step_size, target_acceptance
        See ``algorithm``. Dual averaging (BlackJAX) on the mean acceptance over chains.
    record_positions
        Also record whole positions as ``position`` (memory: draws x chains x size).
    num_chunks
        The scan is cut into about this many compiled chunks so the progress bar can advance.
    progress
        Show a progress bar.
    attrs
        Extra attrs to store (sampler name, estimator, ...).
    return_state
        Also return the final kernel states (batched over chains), to continue the chains.

    Returns
    -------
    InferenceData (ArviZ 0.x) or DataTree (ArviZ 1.x) with ``posterior`` (observables per draw)
    and ``sample_stats`` (``lp`` when the state has ``logdensity``, and every per-chain scalar
    field of the kernel's Info: ``acceptance_rate``, ``is_accepted``, ...); and the final state
    if ``return_state``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.mcmc import checkerboard
    >>> target = Phi4(L=4, beta=0.5, g=1.0)
    >>> idata = run_chains(checkerboard(target, 1.0), 0, jnp.zeros((4, 4, 4)), 200,
    ...                    warmup=50, target=target, progress=False)
    >>> idata.posterior["abs_m"].shape
    (4, 200)
    """
    num_steps = positive_int("num_steps", num_steps)
    warmup = positive_int("warmup", warmup, minimum=0)
    thin = positive_int("thin", thin)
    num_chunks = positive_int("num_chunks", num_chunks)
    if num_steps < thin:
        raise ValueError(f"num_steps ({num_steps}) must be at least thin ({thin})")
    seed = None
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        seed = int(key)
        key = jax.random.key(seed)

    positions = jnp.asarray(initial_positions, dtype=float)
    if positions.ndim < 1 or positions.shape[0] < 1:
        raise ValueError(
            f"initial_positions must have shape (n_chains, ...), got {positions.shape}"
        )
    if not bool(jnp.all(jnp.isfinite(positions))):
        raise ValueError("initial_positions must be finite")
    n_chains = positions.shape[0]

    if isinstance(algorithm, blackjax.base.SamplingAlgorithm):
        if target_acceptance is not None:
            raise ValueError(
                "target_acceptance needs `algorithm` as a function step_size -> SamplingAlgorithm"
            )
        fixed = algorithm

        def build(eps):
            return fixed
    elif callable(algorithm):
        if step_size is None:
            raise ValueError("step_size is required when `algorithm` is a function of it")
        positive("step_size", step_size)
        build = algorithm
    else:
        raise TypeError(f"algorithm must be a SamplingAlgorithm or a function, got {algorithm!r}")
    eps0 = jnp.asarray(step_size if step_size is not None else 0.0, dtype=float)
    tune = target_acceptance is not None
    if tune:
        probability("target_acceptance", target_acceptance)
        if warmup < 1:
            raise ValueError("step-size tuning needs warmup >= 1")

    batch = batch_size(build(eps0))
    if observables is None:
        observables = getattr(target, "observables", None) or (lambda x: {"x": x})
    if batch is not None:
        observables = jax.vmap(observables)
    if dims is None:
        dims = dict(getattr(target, "observable_dims", {}) or {})
    stat_shape = (n_chains,) if batch is None else (n_chains, batch)

    def step_all(key, states, eps):
        alg = build(eps)
        return jax.vmap(alg.step)(jax.random.split(key, n_chains), states)

    da_init, da_update, da_final = blackjax.adaptation.step_size.dual_averaging_adaptation(
        target_acceptance if tune else 0.5
    )

    @jax.jit
    def init_states(positions, eps):
        return jax.vmap(lambda x: build(eps).init(x))(positions)

    def record(states, info):
        rec = {"obs": jax.vmap(observables)(states.position)}
        rec["stats"] = _per_chain_scalars(info, stat_shape)
        if hasattr(states, "logdensity"):
            rec["stats"]["lp"] = states.logdensity
        if record_positions:
            rec["obs"]["position"] = states.position
        return rec

    @jax.jit
    def run_chunk(carry, key, n, inner, adapt, keep, eps_fixed):
        """``n`` times ``inner`` steps, each time recorded into a buffer of ``max_records``
        rows when ``keep``.

        ``n``, ``inner``, ``adapt`` and ``keep`` are traced, so warm-up (``inner = 1``, step
        size adapted when tuning, nothing recorded) and sampling (``inner = thin``) of every
        chunk length share ONE compiled program: a chain run compiles its kernel step once.
        """

        def step(c):
            states, da, info, count = c
            eps = jnp.where(adapt, jnp.exp(da.log_step_size), eps_fixed)
            states, info = step_all(jax.random.fold_in(key, count), states, eps)
            if tune:
                tuned = da_update(da, jnp.mean(info.acceptance_rate))
                da = jax.tree.map(lambda a, b: jnp.where(adapt, a, b), tuned, da)
            return states, da, info, count + 1

        def body(i, c):
            c, buf = c
            c = jax.lax.fori_loop(0, inner, lambda _, cc: step(cc), c)
            buf = jax.lax.cond(
                keep,
                lambda b: jax.tree.map(lambda a, r: a.at[i].set(r), b, record(c[0], c[2])),
                lambda b: b,
                buf,
            )
            return c, buf

        states, da = carry
        info = jax.eval_shape(lambda s: step_all(key, s, eps_fixed)[1], states)
        info = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), info)
        rec = jax.eval_shape(record, states, info)
        buf = jax.tree.map(lambda a: jnp.zeros((max_records, *a.shape), a.dtype), rec)
        (states, da, _, _), buf = jax.lax.fori_loop(
            0, n, body, ((states, da, info, jnp.int32(0)), buf)
        )
        return (states, da), buf

    k_warm, k_sample = jax.random.split(key)
    start = time.perf_counter()
    states = init_states(positions, eps0)
    da = da_init(eps0) if tune else da_init(1.0)
    num_draws = num_steps // thin
    warm_pieces, draw_pieces = _chunks(warmup, num_chunks), _chunks(num_draws, num_chunks)
    max_records = max(warm_pieces + draw_pieces)
    bar = tqdm(total=warmup + num_draws * thin, unit="step", disable=not progress, desc="chains")
    with bar:
        for i, n in enumerate(warm_pieces):
            (states, da), _ = run_chunk(
                (states, da), jax.random.fold_in(k_warm, i), n, 1, tune, False, eps0
            )
            jax.block_until_ready(states)
            bar.update(n)
        eps = da_final(da) if tune else eps0
        records = []
        for i, n in enumerate(draw_pieces):
            (states, da), rec = run_chunk(
                (states, da), jax.random.fold_in(k_sample, i), n, thin, False, True, eps
            )
            records.append(jax.tree.map(lambda a, n=n: a[:n], jax.device_get(rec)))
            bar.update(n * thin)
    elapsed = time.perf_counter() - start

    def stack(part):
        return {
            name: np.swapaxes(np.concatenate([r[part][name] for r in records]), 0, 1)
            for name in records[0][part]
        }

    posterior, stats = stack("obs"), stack("stats")
    if record_positions:
        n_sites = positions.ndim - 1 - (batch is not None)
        dims = {**dims, "position": [f"site_{i}" for i in range(n_sites)]}
    if batch is not None:
        dims = {name: [BATCH_DIM, *dims.get(name, [])] for name in {**posterior, **stats}}
    meta = dict(getattr(target, "params", {}) or {})
    meta.update(
        num_chains=n_chains,
        num_steps=num_steps,
        warmup=warmup,
        thin=thin,
        seed=seed,
        wall_time_s=round(elapsed, 3),
        versions=versions(),
    )
    if step_size is not None or tune:
        meta["step_size"] = float(eps)
    meta.update(attrs or {})
    idata = _arviz.make_idata(posterior, stats, dims=dims, attrs=meta)
    return (idata, states) if return_state else idata


def _chunks(total: int, num_chunks: int) -> list[int]:
    """Cut ``total`` into at most ``num_chunks`` equal pieces plus one remainder."""
    if total == 0:
        return []
    size = max(1, -(-total // num_chunks))
    pieces = [size] * (total // size)
    if total % size:
        pieces.append(total % size)
    return pieces
