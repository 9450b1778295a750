"""Timing on a shared, noisy machine: compile apart from run, interleaved repeats, medians.

A *loop* is a jitted program ``run(key, carry, n) -> carry`` that applies a step ``n`` times
(``lax.fori_loop`` with a traced trip count, so one compilation serves every ``n``). It is
compiled ahead of time (``jit(...).lower(...).compile()``, timed on its own), ``n`` is
calibrated so one call lasts at least ``min_time`` seconds, and the candidates of a group are
then called in turn, ``repeats`` times, in a rotating order; a candidate's time per step is
the median over repeats, and the ratio of two candidates the median of the ratios of their
adjacent calls (so a load change on the machine cancels out).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from uqmcmc._meta import versions

__all__ = [
    "Loop",
    "over_chains",
    "algorithm_steps",
    "compile_loop",
    "measure",
    "paired_ratio",
    "machine",
    "loglog_slope",
]


@dataclass
class Loop:
    """A compiled step loop: ``call(n)`` runs ``n`` steps and blocks until done."""

    name: str
    compiled: Any
    args: tuple
    compile_s: float

    def call(self, n: int) -> float:
        """Wall time of one call of ``n`` steps (seconds)."""
        start = time.perf_counter()
        jax.block_until_ready(self.compiled(*self.args, jnp.int32(n)))
        return time.perf_counter() - start


def over_chains(step: Callable[[jax.Array, Any], Any], chains: int):
    """``(key, states) -> states``: ``step(key, state)`` of every chain, ``vmap``-ed, one key each.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> run = over_chains(lambda k, x: x + jax.random.uniform(k), 3)
    >>> run(jax.random.key(0), jnp.zeros(3)).shape
    (3,)
    """

    def run(key, states):
        return jax.vmap(step)(jax.random.split(key, chains), states)

    return run


def algorithm_steps(algorithm: Any, chains: int):
    """``(key, states) -> states``: one step of a ``SamplingAlgorithm`` on every chain (the
    step's Info is dropped, so XLA does not compute what nobody reads)."""
    return over_chains(lambda k, s: algorithm.step(k, s)[0], chains)


def compile_loop(
    name: str, step: Callable[[jax.Array, Any], Any], carry: Any, key: jax.Array | None = None
) -> Loop:
    """Compile ``n`` repetitions of ``carry <- step(key_i, carry)`` ahead of time.

    ``step`` must be pure and jit-able; keys ``fold_in(key, i)`` are fresh per repetition.
    The compile time (tracing, lowering and XLA compilation) is measured on its own.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> loop = compile_loop("add", lambda k, x: x + jax.random.normal(k), jnp.zeros(()))
    >>> loop.compile_s > 0, loop.call(10) > 0
    (True, True)
    """
    key = jax.random.key(0) if key is None else key

    def run(key, carry, n):
        def body(i, c):
            return step(jax.random.fold_in(key, i), c)

        return jax.lax.fori_loop(0, n, body, carry)

    start = time.perf_counter()
    compiled = jax.jit(run).lower(key, carry, jnp.int32(1)).compile()
    compile_s = time.perf_counter() - start
    loop = Loop(name, compiled, (key, carry), compile_s)
    loop.call(1)  # first execution: buffer allocation, not counted
    return loop


def _calibrate(loop: Loop, min_time: float, max_n: int = 1 << 22) -> int:
    """Smallest power of two ``n`` whose call lasts at least ``min_time``."""
    n = 1
    while n < max_n:
        t = loop.call(n)
        if t >= min_time:
            return n
        # jump close to the goal, but at most 64-fold at a time
        n *= int(min(64, max(2, 2 ** round(max(1.0, (min_time / max(t, 1e-6)) ** 0.5)))))
    return max_n


def measure(
    loops: list[Loop], *, repeats: int = 5, min_time: float = 0.05
) -> dict[str, dict[str, Any]]:
    """Time a group of loops side by side.

    Each loop runs its own calibrated number of steps per call (at least ``min_time``),
    ``repeats`` times, the order rotating between repeats. Returns per loop ``step_s`` (median
    seconds per step), ``step_s_all`` (each repeat), ``n`` and ``compile_s``.
    """
    steps = {loop.name: _calibrate(loop, min_time) for loop in loops}
    times: dict[str, list[float]] = {loop.name: [] for loop in loops}
    for r in range(repeats):
        k = r % len(loops)
        for loop in loops[k:] + loops[:k]:
            n = steps[loop.name]
            times[loop.name].append(loop.call(n) / n)
    return {
        loop.name: {
            "step_s": statistics.median(times[loop.name]),
            "step_s_all": times[loop.name],
            "n": steps[loop.name],
            "compile_s": loop.compile_s,
        }
        for loop in loops
    }


def paired_ratio(result: Mapping[str, Mapping[str, Any]], num: str, den: str) -> float:
    """Median over repeats of ``time(num) / time(den)`` (calls of one repeat are adjacent).

    Examples
    --------
    >>> paired_ratio({"a": {"step_s_all": [2.0, 4.0, 3.0]}, "b": {"step_s_all": [1, 2, 1]}},
    ...              "a", "b")
    2.0
    """
    a, b = result[num]["step_s_all"], result[den]["step_s_all"]
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of ``log y`` against ``log x``.

    Examples
    --------
    >>> round(loglog_slope([8, 16, 32], [1.0, 4.0, 16.0]), 6)
    2.0
    """
    import numpy as np

    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where the numbers were measured: CPU model, cores, load, platform, library versions."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "versions": versions(),
    }
