"""Run any BlackJAX ``SamplingAlgorithm`` over many chains and return ArviZ data.

:func:`run_chains` checks its arguments, resolves ``algorithm`` (an algorithm, or a function of
the step size) into one form, and hands over to three pieces: the sampling loop
(:mod:`uqmcmc.mcmc.sampling_loop`), the step-size adaptation (:mod:`uqmcmc.mcmc.adaptation`)
and the conversion to ArviZ data (:mod:`uqmcmc.mcmc.to_arviz`). With several devices the chain
axis is split over them (:mod:`uqmcmc.mcmc.sharding`); the draws are bit-identical to a
one-device run with the same key (on CPU, when XLA compiles the per-chain work the same way for
every batch size: see :mod:`uqmcmc.mcmc.sharding`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from blackjax.base import SamplingAlgorithm

from uqmcmc._validation import positive, positive_int
from uqmcmc.mcmc.adaptation import StepSizeAdaptation, dual_averaging, fixed_step_size
from uqmcmc.mcmc.batched import BatchedAlgorithm, batch_size
from uqmcmc.mcmc.checkpoint import Checkpoint
from uqmcmc.mcmc.sampling_loop import Build, LoopConfig, make_recorder, sample_chains
from uqmcmc.mcmc.sharding import chain_mesh
from uqmcmc.mcmc.to_arviz import run_attrs, to_arviz

__all__ = ["run_chains"]

Algorithm = SamplingAlgorithm | BatchedAlgorithm


class _Resolved(NamedTuple):
    """``algorithm`` in its one internal form: ``build(step_size) -> algorithm``."""

    build: Build
    step_size: jax.Array  # the starting (or only) step size; 0 when none was given
    adaptation: StepSizeAdaptation
    records_step_size: bool  # a step size was given or tuned: store it in the attrs


def _resolve(
    algorithm: Algorithm | Callable[[Any], Algorithm],
    step_size: float | None,
    target_acceptance: float | None,
    warmup: int,
) -> _Resolved:
    if isinstance(algorithm, SamplingAlgorithm | BatchedAlgorithm):
        if target_acceptance is not None:
            raise ValueError(
                "target_acceptance needs `algorithm` as a function step_size -> SamplingAlgorithm"
            )

        def build(eps: jax.Array) -> Algorithm:
            return algorithm
    elif callable(algorithm):
        if step_size is None:
            raise ValueError("step_size is required when `algorithm` is a function of it")
        positive("step_size", step_size)
        build = algorithm
    else:
        raise TypeError(f"algorithm must be a SamplingAlgorithm or a function, got {algorithm!r}")
    eps0 = jnp.asarray(step_size if step_size is not None else 0.0, dtype=float)
    if target_acceptance is None:
        return _Resolved(build, eps0, fixed_step_size(eps0), step_size is not None)
    adaptation = dual_averaging(target_acceptance)
    if warmup < 1:
        raise ValueError("step-size tuning needs warmup >= 1")
    return _Resolved(build, eps0, adaptation, True)


def _key_and_seed(key: jax.Array | int) -> tuple[jax.Array, int | None]:
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jax.random.key(int(key)), int(key)
    return key, None


def _check_positions(initial_positions: Any) -> jax.Array:
    positions = jnp.asarray(initial_positions, dtype=float)
    if positions.ndim < 1 or positions.shape[0] < 1:
        raise ValueError(
            f"initial_positions must have shape (n_chains, ...), got {positions.shape}"
        )
    if not bool(jnp.all(jnp.isfinite(positions))):
        raise ValueError("initial_positions must be finite")
    return positions


def run_chains(
    algorithm: Algorithm | Callable[[Any], Algorithm],
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
    progress: bool | Callable[[int], Any] = True,
    attrs: Mapping[str, Any] | None = None,
    return_state: bool = False,
    devices: Any = None,
    checkpoint: str | os.PathLike | None = None,
):
    """Run many chains of one algorithm with ``vmap`` and chunked ``lax.scan``.

    Parameters
    ----------
    algorithm
        A ``blackjax.base.SamplingAlgorithm`` (``init``, ``step``) or a
        :class:`~uqmcmc.mcmc.BatchedAlgorithm`; or a function ``step_size -> algorithm``
        whose step size is tuned during warm-up when ``target_acceptance`` is given (then
        ``step_size`` is the starting value).
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
        Default: the target's ``observables``, else the position itself as ``x``. For a
        :class:`~uqmcmc.mcmc.BatchedAlgorithm` (positions ``(n_chains, K, ...)``) it
        is applied to each variant's position, and every observable and Info field gets a
        leading ``variant`` dimension (:func:`~uqmcmc.mcmc.split_batched` splits the run).
    dims
        ArviZ dims of non-scalar observables, e.g. ``{"G": ["r"]}``.
    step_size, target_acceptance
        See ``algorithm``. Dual averaging (BlackJAX) on the mean acceptance over chains, and
        over the variants of a batched algorithm: one step size for all
        (:mod:`uqmcmc.mcmc.adaptation`).
    record_positions
        Also record whole positions as ``position`` (memory: draws x chains x size).
    num_chunks
        The scan is cut into about this many compiled chunks so the progress bar can advance.
    progress
        ``True``: show a progress bar; a callable: called with the number of steps done after
        every chunk (one meter can follow several runs, e.g.
        :class:`~uqmcmc.workflows.compare_progress.ChainMeter`); ``False``: nothing.
    attrs
        Extra attrs to store (sampler name, estimator, ...).
    return_state
        Also return the final kernel states (batched over chains), to continue the chains.
    devices
        Devices to split the chains over (:mod:`uqmcmc.mcmc.sharding`): ``None`` for all of
        ``jax.devices()`` (every host's, once ``jax.distributed.initialize`` has run), an
        ``int`` for the first that many, a sequence of devices, or a one-axis
        ``jax.sharding.Mesh``; ``1`` runs on one device. When the number of chains is not
        divisible by the number of devices, the largest number of devices that divides it is
        used (7 chains: one device). The random numbers are the same whatever the number of
        devices, and so are the draws up to XLA's rounding of per-chain sums, which on CPU can
        depend on the number of chains per device (identical for phi^4 up to L = 8);
        ``num_devices`` is recorded in the attrs.
    checkpoint
        A folder (created if absent) to checkpoint the run in (:mod:`uqmcmc.mcmc.checkpoint`):
        after every chunk the kernel states, the adaptation state, the step size and the chunk
        index go to ``state.npz``, and every sampling chunk's draws to its own
        ``draws-NNNNN.npz`` instead of memory (read back at the end). If the folder already
        holds a state, the run continues after its last finished chunk and returns the same
        draws, bit for bit, as an uninterrupted run with the same key; a state written with
        another key, ``num_steps``, ``warmup``, ``thin``, ``num_chunks``, number of chains,
        position shape, starting ``step_size``, ``target_acceptance`` or other recorded
        variables is refused (``ValueError`` naming it). The algorithm and the target are not
        checked: resume with the same ones. A finished checkpoint returns its run again.

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
    >>> one = run_chains(checkerboard(target, 1.0), 0, jnp.zeros((4, 4, 4)), 200,
    ...                  warmup=50, target=target, progress=False, devices=1)
    >>> bool((one.posterior["abs_m"] == idata.posterior["abs_m"]).all())  # any device count
    True

    With a checkpoint folder, a run stopped part-way (here by its progress callable, as Ctrl-C
    would) continues where it stopped, with the draws of an uninterrupted run:

    >>> import tempfile
    >>> def stop_at_third_chunk(n, calls=[]):
    ...     calls.append(n)
    ...     if len(calls) == 3:
    ...         raise KeyboardInterrupt
    >>> args = (checkerboard(target, 1.0), 0, jnp.zeros((4, 4, 4)), 200)
    >>> folder = tempfile.mkdtemp()
    >>> try:
    ...     run_chains(*args, warmup=50, target=target, progress=stop_at_third_chunk,
    ...                checkpoint=folder)
    ... except KeyboardInterrupt:
    ...     print("stopped after 3 chunks")
    stopped after 3 chunks
    >>> resumed = run_chains(*args, warmup=50, target=target, progress=False, checkpoint=folder)
    >>> bool((resumed.posterior["abs_m"] == idata.posterior["abs_m"]).all())
    True
    """
    num_steps = positive_int("num_steps", num_steps)
    warmup = positive_int("warmup", warmup, minimum=0)
    thin = positive_int("thin", thin)
    num_chunks = positive_int("num_chunks", num_chunks)
    if num_steps < thin:
        raise ValueError(f"num_steps ({num_steps}) must be at least thin ({thin})")
    key, seed = _key_and_seed(key)
    positions = _check_positions(initial_positions)
    n_chains = positions.shape[0]
    resolved = _resolve(algorithm, step_size, target_acceptance, warmup)

    batch = batch_size(resolved.build(resolved.step_size))
    if observables is None:
        observables = getattr(target, "observables", None) or (lambda x: {"x": x})
    if batch is not None:
        observables = jax.vmap(observables)
    if dims is None:
        dims = dict(getattr(target, "observable_dims", {}) or {})
    stat_shape = (n_chains,) if batch is None else (n_chains, batch)
    mesh = chain_mesh(n_chains, devices)
    if checkpoint is not None:
        checkpoint = Checkpoint(
            checkpoint,
            {
                "num_chains": n_chains,
                "position_shape": np.asarray(positions.shape[1:], np.int64),
                "num_steps": num_steps,
                "warmup": warmup,
                "thin": thin,
                "num_chunks": num_chunks,
                "key": jax.random.key_data(key),
                "step_size": float(resolved.step_size),
                "target_acceptance": np.nan if target_acceptance is None else target_acceptance,
            },
        )

    result = sample_chains(
        resolved.build,
        positions,
        key,
        resolved.step_size,
        resolved.adaptation,
        make_recorder(observables, stat_shape, record_positions),
        LoopConfig(warmup, num_steps // thin, thin, num_chunks, progress),
        mesh,
        checkpoint,
    )
    settings = {
        "num_chains": n_chains,
        "num_steps": num_steps,
        "warmup": warmup,
        "thin": thin,
        "seed": seed,
        "num_devices": 1 if mesh is None else mesh.size,
        "wall_time_s": round(result.wall_time, 3),
    }
    eps = result.step_size if resolved.records_step_size else None
    meta = run_attrs(target, settings, eps, attrs)
    idata = to_arviz(
        result.records, dims, meta, batch_size=batch, record_positions=record_positions
    )
    return (idata, result.states) if return_state else idata
