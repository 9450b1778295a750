"""The sampling loop of :func:`~uqmcmc.mcmc.run_chains`: every chain under ``vmap``, in chunks.

Warm-up and sampling run as compiled chunks (a ``lax.fori_loop`` of ``lax.fori_loop`` s) so a
progress bar can advance between them; one chunk program serves warm-up and sampling of every
chunk length, so a run compiles its kernel step once. What is recorded per kept draw is the
``record(states, info)`` function of :func:`make_recorder`.

Every chunk draws its random numbers from ``fold_in(k_warm, i)`` or ``fold_in(k_sample, i)``
for its index ``i`` alone, so a run can stop after any chunk and continue later: given a
:class:`~uqmcmc.mcmc.checkpoint.Checkpoint`, the loop saves its state after every chunk and
its draws to disk, and resumes after the last finished chunk, bit-identical to an
uninterrupted run.

Given a ``mesh`` (:func:`uqmcmc.mcmc.sharding.chain_mesh`), the chain axis of the positions,
states, per-chain keys and Info is split over its devices. The per-chain keys are split for
all chains first and only then placed, and the mean acceptance the step-size adaptation sees
is taken over the gathered (replicated) per-chain values: a sharded run uses the same random
numbers as the one-device run with the same key, and is bit-identical to it whenever XLA
compiles the per-chain work the same way for every chain batch size (on CPU: phi^4 lattices up
to 8 x 8; larger per-chain sums are vectorised by batch size and can differ in the last bit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from uqmcmc.mcmc.adaptation import StepSizeAdaptation
from uqmcmc.mcmc.checkpoint import Checkpoint
from uqmcmc.mcmc.sharding import (
    constrain_leading,
    constrain_replicated,
    replicate,
    shard_leading,
)

Array = jax.Array
Build = Callable[[Array], Any]  # step_size -> SamplingAlgorithm | BatchedAlgorithm
Recorder = Callable[[Any, Any], dict[str, dict[str, Array]]]

__all__ = [
    "TALLIES",
    "LoopConfig",
    "LoopResult",
    "chunk_sizes",
    "make_recorder",
    "sample_chains",
]

#: Per-step Info fields tallied over EVERY step, not sampled at the kept ones: each kept draw
#: records the sum (flags) or the maximum (``penalty``, finite values) over the ``thin`` steps
#: that led to it, so a run's totals count every sampling step. name -> (how, recorded as).
TALLIES = {
    "nonfinite": ("sum", "nonfinite"),
    "out_of_range": ("sum", "out_of_range"),
    "penalty": ("max", "penalty_max"),
}


class LoopConfig(NamedTuple):
    """The lengths of a run.

    warmup
        Steps discarded first (adapting the step size if the adaptation tunes).
    num_draws
        Draws kept after the warm-up, one every ``thin`` steps.
    thin
        Steps per kept draw.
    num_chunks
        About this many compiled chunks per phase (the progress bar advances between them).
    progress
        ``True``: show a progress bar; or a callable, called with the number of steps just done
        after every chunk (e.g. a meter shared by several runs); ``False``: nothing.

    Examples
    --------
    >>> LoopConfig(warmup=10, num_draws=5, thin=2, num_chunks=3).num_steps
    20
    """

    warmup: int
    num_draws: int
    thin: int = 1
    num_chunks: int = 20
    progress: bool | Callable[[int], Any] = False

    @property
    def num_steps(self) -> int:
        """Kernel steps in all: warm-up plus ``num_draws * thin``."""
        return self.warmup + self.num_draws * self.thin


class LoopResult(NamedTuple):
    """What :func:`sample_chains` returns.

    states
        The final kernel states (batched over chains).
    step_size
        The step size the draws were made with (adapted or fixed).
    records
        One dict ``{"obs": ..., "stats": ...}`` of host arrays per sampling chunk, each leaf
        with the chunk's draws on its leading axis; with a checkpoint, ONE such dict of all the
        draws read back from its files, shaped ``(chain, draw, ...)``.
    wall_time
        Seconds from the initial states to the last draw (compilation included; with a
        checkpoint, summed over the sessions of the run).

    Examples
    --------
    >>> LoopResult._fields
    ('states', 'step_size', 'records', 'wall_time')
    """

    states: Any
    step_size: Any
    records: list[dict[str, dict[str, Any]]]
    wall_time: float


class _Saved(NamedTuple):
    """What a checkpoint saves after every chunk (its leaves are named after these fields)."""

    states: Any
    adapt: Any
    step_size: Any


def chunk_sizes(total: int, num_chunks: int) -> list[int]:
    """Cut ``total`` into at most ``num_chunks`` equal pieces plus one remainder.

    Examples
    --------
    >>> chunk_sizes(10, 3), chunk_sizes(0, 5)
    ([4, 4, 2], [])
    """
    if total == 0:
        return []
    size = max(1, -(-total // num_chunks))
    pieces = [size] * (total // size)
    if total % size:
        pieces.append(total % size)
    return pieces


def _per_chain_scalars(info: Any, shape: tuple[int, ...]) -> dict[str, Array]:
    """The fields of an Info NamedTuple that hold one scalar per chain (and per variant of a
    batched algorithm): those of shape ``shape``."""
    fields = getattr(info, "_asdict", lambda: {})()
    return {
        name: value
        for name, value in fields.items()
        if isinstance(value, jax.Array) and value.shape == shape
    }


def make_recorder(
    observables: Callable[[Array], Mapping[str, Array]],
    stat_shape: tuple[int, ...],
    record_positions: bool = False,
) -> Recorder:
    """``record(states, info)``: the observables of every chain and its per-chain statistics.

    Parameters
    ----------
    observables
        Function of ONE position (of one variant, for a batched algorithm: then pass it
        vmapped over the variants) returning a dict of arrays.
    stat_shape
        ``(n_chains,)``, or ``(n_chains, K)`` for a batched algorithm: the Info fields of this
        shape are recorded (``acceptance_rate``, ``is_accepted``, ...), plus ``lp`` when the
        state has a ``logdensity``.
    record_positions
        Also record the whole positions as ``position``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from blackjax.mcmc.random_walk import RWInfo, RWState
    >>> record = make_recorder(lambda x: {"r2": jnp.sum(x**2)}, (3,))
    >>> states = RWState(jnp.ones((3, 2)), jnp.zeros(3))
    >>> rec = record(states, RWInfo(jnp.ones(3), jnp.ones(3, bool), None))
    >>> rec["obs"]["r2"].tolist(), sorted(rec["stats"])
    ([2.0, 2.0, 2.0], ['acceptance_rate', 'is_accepted', 'lp'])
    """

    def record(states: Any, info: Any) -> dict[str, dict[str, Array]]:
        rec = {"obs": jax.vmap(observables)(states.position)}
        rec["stats"] = _per_chain_scalars(info, stat_shape)
        if hasattr(states, "logdensity"):
            rec["stats"]["lp"] = states.logdensity
        if record_positions:
            rec["obs"]["position"] = states.position
        return rec

    return record


def _tally_init(stats: Mapping[str, Any]) -> dict[str, Array]:
    """Zero tallies for the :data:`TALLIES` fields among the recorded per-chain ``stats``
    (shape/dtype structs)."""
    out = {}
    for name, (how, _) in TALLIES.items():
        if name in stats:
            shape = stats[name].shape
            if how == "sum":
                out[name] = jnp.zeros(shape, jnp.int32)
            else:
                out[name] = jnp.full(shape, -jnp.inf, stats[name].dtype)
    return out


def _tally_update(tally: dict[str, Array], info: Any) -> dict[str, Array]:
    fields = info._asdict()
    out = {}
    for name, acc in tally.items():
        how = TALLIES[name][0]
        value = fields[name]
        if how == "sum":
            out[name] = acc + value.astype(acc.dtype)
        else:
            out[name] = jnp.maximum(acc, jnp.where(jnp.isfinite(value), value, -jnp.inf))
    return out


def _chunk_runner(
    step_all: Callable,
    record: Recorder,
    adaptation: StepSizeAdaptation,
    max_records: int,
    mesh: Any = None,
) -> Callable:
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
            eps = jnp.where(adapt, adaptation.current(da), eps_fixed)
            states, info = step_all(jax.random.fold_in(key, count), states, eps)
            if adaptation.tunes:
                # gathered: the mean over chains adds in the one-device order (bit-identity)
                tuned = adaptation.update(da, constrain_replicated(info, mesh))
                da = jax.tree.map(lambda a, b: jnp.where(adapt, a, b), tuned, da)
            return states, da, info, count + 1

        def tallied(_, ct):
            c, tally = ct
            c = step(c)
            return c, _tally_update(tally, c[2])

        def record_tallied(states, info, tally):
            rec = record(states, info)
            for name, value in tally.items():
                rec["stats"][TALLIES[name][1]] = value
            return rec

        def body(i, c):
            c, buf = c
            c, tally = jax.lax.fori_loop(0, inner, tallied, (c, _tally_init(tallied_stats)))
            buf = jax.lax.cond(
                keep,
                lambda b: jax.tree.map(
                    lambda a, r: a.at[i].set(r), b, record_tallied(c[0], c[2], tally)
                ),
                lambda b: b,
                buf,
            )
            return c, buf

        states, da = carry
        info = jax.eval_shape(lambda s: step_all(key, s, eps_fixed)[1], states)
        info = constrain_leading(jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), info), mesh)
        tallied_stats = jax.eval_shape(record, states, info)["stats"]
        rec = jax.eval_shape(record_tallied, states, info, _tally_init(tallied_stats))
        buf = jax.tree.map(lambda a: jnp.zeros((max_records, *a.shape), a.dtype), rec)
        (states, da, _, _), buf = jax.lax.fori_loop(
            0, n, body, ((states, da, info, jnp.int32(0)), buf)
        )
        # the records leave whole (replicated): readable on every host of a multi-host mesh
        return (states, da), constrain_replicated(buf, mesh)

    return run_chunk


def sample_chains(
    build: Build,
    positions: Array,
    key: Array,
    step_size: Array,
    adaptation: StepSizeAdaptation,
    record: Recorder,
    config: LoopConfig,
    mesh: Any = None,
    checkpoint: Checkpoint | None = None,
) -> LoopResult:
    """Initialise one chain per position, warm up, then sample and record.

    Parameters
    ----------
    build
        ``step_size -> algorithm`` (``init``, ``step``); a fixed algorithm ignores its argument.
    positions
        ``(n_chains, *position_shape)``.
    key
        A JAX PRNG key: split into warm-up and sampling keys, each folded with the chunk index.
    step_size
        The initial (or only) step size, an array.
    adaptation
        A :class:`~uqmcmc.mcmc.adaptation.StepSizeAdaptation`, e.g.
        :func:`~uqmcmc.mcmc.adaptation.fixed_step_size`.
    record
        What to keep per draw (:func:`make_recorder`).
    config
        The lengths (:class:`LoopConfig`).
    mesh
        A one-axis ``jax.sharding.Mesh`` whose size divides the number of chains
        (:func:`uqmcmc.mcmc.sharding.chain_mesh`): the chain axis is split over its devices.
        ``None``: no sharding (one device).
    checkpoint
        A :class:`~uqmcmc.mcmc.checkpoint.Checkpoint`: after every chunk the states, the
        adaptation state and the step size are saved (gathered on the host; placed on the mesh
        again when read), and every sampling chunk's records go to their own file instead of
        memory, read back at the end. A checkpoint that holds a state resumes after its last
        finished chunk: the chunks' keys are ``fold_in(k_warm | k_sample, i)`` whichever session
        runs chunk ``i``, so the draws are bit-identical to an uninterrupted run.

    Examples
    --------
    >>> import blackjax, jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc.adaptation import fixed_step_size
    >>> alg, eps = blackjax.normal_random_walk(lambda x: -0.5 * x @ x, 1.0), jnp.asarray(1.0)
    >>> out = sample_chains(lambda _: alg, jnp.zeros((2, 1)), jax.random.key(0), eps,
    ...                     fixed_step_size(eps), make_recorder(lambda x: {"x": x[0]}, (2,)),
    ...                     LoopConfig(warmup=5, num_draws=6, num_chunks=2))
    >>> [r["obs"]["x"].shape for r in out.records], out.states.position.shape
    ([(3, 2), (3, 2)], (2, 1))
    """
    if config.num_draws < 1:
        raise ValueError(f"a run keeps at least one draw, got num_draws={config.num_draws}")
    n_chains = positions.shape[0]

    def step_all(key, states, eps):
        alg = build(eps)
        # every chain's key is split from the one key, THEN placed: independent of the mesh
        keys = constrain_leading(jax.random.split(key, n_chains), mesh)
        states, info = jax.vmap(alg.step)(keys, states)
        return constrain_leading(states, mesh), constrain_leading(info, mesh)

    @jax.jit
    def init_states(positions, eps):
        return constrain_leading(jax.vmap(lambda x: build(eps).init(x))(positions), mesh)

    warm_pieces = chunk_sizes(config.warmup, config.num_chunks)
    draw_pieces = chunk_sizes(config.num_draws, config.num_chunks)
    run_chunk = _chunk_runner(step_all, record, adaptation, max(warm_pieces + draw_pieces), mesh)

    k_warm, k_sample = replicate(jax.random.split(key), mesh)
    step_size = replicate(step_size, mesh)
    start = time.perf_counter()
    states = init_states(shard_leading(positions, mesh), step_size)
    da = replicate(adaptation.init(step_size), mesh)
    warm_from, draw_from, eps, earlier = 0, 0, None, 0.0
    if checkpoint is not None:
        # what one draw records and the types a chunk carries on, from the chunk program's
        # trace (shared with its first call)
        (carried, carried_da), buf = jax.eval_shape(
            run_chunk, (states, da), k_warm, 1, 1, adaptation.tunes, False, step_size
        )
        per_draw = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), buf)
        saved = checkpoint.resume(
            _Saved(states, da, adaptation.final(da)),
            {"warmup": len(warm_pieces), "sample": len(draw_pieces)},
            per_draw,
            like=_Saved(carried, carried_da, jax.eval_shape(adaptation.final, carried_da)),
        )
        if saved is not None:  # gathered on the host when saved: placed again
            states = shard_leading(saved.tree.states, mesh)
            da = replicate(saved.tree.adapt, mesh)
            earlier = saved.wall_time
            if saved.phase == "warmup":
                warm_from = saved.chunk + 1
            else:
                warm_from, draw_from = len(warm_pieces), saved.chunk + 1
                eps = replicate(saved.tree.step_size, mesh)
    done = sum(warm_pieces[:warm_from]) + config.thin * sum(draw_pieces[:draw_from])
    meter = config.progress if callable(config.progress) else None
    bar = tqdm(
        total=config.num_steps,
        initial=done,
        unit="step",
        disable=config.progress is not True,
        desc="chains",
    )

    def advance(n: int) -> None:
        bar.update(n)
        if meter is not None:
            meter(n)

    def elapsed() -> float:
        return earlier + time.perf_counter() - start

    with bar:
        if meter is not None and done:
            meter(done)  # a resumed run's meter starts at the steps already done
        for i in range(warm_from, len(warm_pieces)):
            n = warm_pieces[i]
            (states, da), _ = run_chunk(
                (states, da), jax.random.fold_in(k_warm, i), n, 1, adaptation.tunes, False,
                step_size,
            )  # fmt: skip
            jax.block_until_ready(states)
            if checkpoint is not None:
                checkpoint.save("warmup", i, _Saved(states, da, adaptation.final(da)), elapsed())
            advance(n)
        if eps is None:
            eps = adaptation.final(da)
        records = []
        for i in range(draw_from, len(draw_pieces)):
            n = draw_pieces[i]
            (states, da), rec = run_chunk(
                (states, da), jax.random.fold_in(k_sample, i), n, config.thin, False, True, eps
            )
            rec = jax.tree.map(lambda a, n=n: a[:n], jax.device_get(rec))
            if checkpoint is None:
                records.append(rec)
            else:  # the draws on disk first, then the state that counts them
                checkpoint.save_draws(i, rec)
                checkpoint.save("sample", i, _Saved(states, da, eps), elapsed())
            del rec
            advance(n * config.thin)
    wall_time = elapsed()
    if checkpoint is not None:
        records = checkpoint.read_draws(draw_pieces)
    return LoopResult(states, eps, records, wall_time)
