"""Machine throughput and the surrogate network's share of it (section "throughput").

The machine's rate is that of a float32 dense matrix product (square, ``n x n @ n x n``); a
3 x 3, 16 -> 16 channel convolution (:func:`jax.lax.conv_general_dilated`, NHWC, periodic
padding as the RCNN's convolutions have it) on the draws-mode batch shows what a small
convolution reaches. The default surrogate network (one member of the compare workflow's
``"ensemble"`` backend, built from its registry spec, random initialisation: the cost of a
forward pass does not depend on the weights) is timed on the two batches a MALA step evaluates
it on: ``chains x 3 quadrature nodes x n_draws`` fields in draws mode, ``chains x 3`` in mean
mode.

Every program is a :func:`bench.timing.compile_loop` (compiled apart), and the four are timed
side by side by :func:`bench.timing.measure` (interleaved repeats, medians). The FLOPs of one
call are XLA's own count (``cost_analysis()`` of the compiled call; it counts every
elementwise operation as well), with the analytic count as a fallback for the matrix product
and the convolution. The fraction of the matmul rate is ``flops / flops_matmul`` times the
median over repeats of the ratio of adjacent calls' times (a load change cancels).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bench.timing import compile_loop, measure, paired_ratio

__all__ = ["xla_flops", "default_network", "throughput", "GOALS", "CONV_CHANNELS"]

#: Goals on the fraction of the matmul rate, per forward-pass batch.
GOALS = {"draws": 0.5, "mean": 0.3}
#: Channels of the reference convolution (in and out).
CONV_CHANNELS = 16


def xla_flops(fn: Callable, *args: Any) -> float | None:
    """XLA's FLOP count of one call of ``jit(fn)(*args)``, or ``None`` when it gives none.

    ``cost_analysis()`` returns a dict, or a list of dicts (one per computation) on older
    jax versions; both are read.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> xla_flops(lambda a, b: a @ b, jnp.ones((4, 8)), jnp.ones((8, 2)))
    128.0
    """
    try:
        analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    except Exception:  # no cost model on this backend
        return None
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    if flops is None or not math.isfinite(float(flops)) or float(flops) <= 0:
        return None
    return float(flops)


def periodic_conv(h: jax.Array, w: jax.Array) -> jax.Array:
    """``k x k`` convolution of ``h (B, L, L, C)`` with ``w (k, k, C, C')``, periodic padding.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> h = jnp.zeros((1, 4, 4, 1)).at[0, 0, 0, 0].set(1.0)
    >>> out = periodic_conv(h, jnp.ones((3, 3, 1, 1)))
    >>> float(out.sum()), float(out[0, 3, 3, 0])  # the stencil wraps around the edges
    (9.0, 1.0)
    """
    r = w.shape[0] // 2
    padded = jnp.pad(h, ((0, 0), (r, r), (r, r), (0, 0)), mode="wrap")
    return jax.lax.conv_general_dilated(
        padded, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def default_network(seed: int = 0):
    """The compare workflow's default surrogate network, one member, randomly initialised.

    The architecture is the one the registry's built-in ``"ensemble"`` spec builds its
    members from (its :class:`~uqmcmc.uq.io.ModelSpec`). Returns ``(description, apply,
    state, n_params)`` with ``apply(state, x)`` the forward pass on ``(*batch, L, L)``.
    """
    from flax import nnx

    from uqmcmc.uq import registry

    backend = registry.get("ensemble").build(registry.BackendSettings())
    spec = backend.spec
    net = spec.build(nnx.Rngs(seed))
    graphdef, state = nnx.split(net)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x)

    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(state))
    return _describe(spec.cls, spec.kwargs), apply, state, n_params


def _describe(cls: type, kwargs: dict) -> str:
    """``cls(arg=value, ...)`` with every argument, the defaults filled in.

    Examples
    --------
    >>> class Net:
    ...     def __init__(self, width=4, *, act="relu", rngs=None): ...
    >>> _describe(Net, {"width": 8})
    "Net(width=8, act='relu')"
    """
    try:
        params = inspect.signature(cls.__init__).parameters.values()
        full = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    except (TypeError, ValueError):
        full = {}
    full = {k: v for k, v in {**full, **kwargs}.items() if k != "rngs"}
    return f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in full.items())})"


def throughput(sizes: Any, key: jax.Array) -> list[dict]:
    """Section rows: matmul, convolution, and the network's forward pass on both batches.

    Sizes read: ``throughput_n`` (matmul size), ``throughput_chains``, ``throughput_nodes``,
    ``n_draws``, ``train_L`` (the lattice), ``repeats``, ``min_time``.
    """
    n, L = sizes.throughput_n, sizes.train_L
    mean_batch = sizes.throughput_chains * sizes.throughput_nodes
    draws_batch = mean_batch * sizes.n_draws
    k_a, k_q, k_h, k_w, k_x = jax.random.split(jax.random.fold_in(key, 7), 5)

    # matmul: a <- a @ q with q orthogonal, so the carry keeps its norm over any number of steps
    a = jax.random.normal(k_a, (n, n), jnp.float32)
    q = jnp.linalg.qr(jax.random.normal(k_q, (n, n), jnp.float32))[0]

    def matmul(k, carry):
        a, q = carry
        return a @ q, q

    # convolution: renormalised every step (one reduction: negligible next to the convolution)
    c = CONV_CHANNELS
    h = jax.random.normal(k_h, (draws_batch, L, L, c), jnp.float32)
    w = jax.random.normal(k_w, (3, 3, c, c), jnp.float32) / math.sqrt(9 * c)

    def conv(k, carry):
        h, w = carry
        y = periodic_conv(h, w)
        return y * jax.lax.rsqrt(jnp.mean(y * y) + 1e-12), w

    name, apply, state, n_params = default_network()

    def forward(k, carry):
        state, x = carry
        return state, x - 1e-4 * apply(state, x)

    candidates = [  # name, row fields, step, carry, analytic FLOPs
        (
            "matmul",
            {"kind": "matmul", "what": f"matmul f32 {n}x{n} @ {n}x{n}", "batch": n},
            matmul, (a, q), 2.0 * n**3,
        ),
        (
            "conv",
            {"kind": "conv", "what": f"conv 3x3 {c}->{c} periodic, NHWC {draws_batch}x{L}x{L}x{c}",
             "batch": draws_batch},
            conv, (h, w), 2.0 * draws_batch * L * L * 9 * c * c,
        ),
    ]  # fmt: skip
    for mode, batch, label in (
        ("draws", draws_batch, f"{sizes.throughput_chains} chains x {sizes.throughput_nodes} "
         f"nodes x {sizes.n_draws} draws"),
        ("mean", mean_batch, f"{sizes.throughput_chains} chains x {sizes.throughput_nodes} nodes"),
    ):  # fmt: skip
        x = 0.5 * jax.random.normal(jax.random.fold_in(k_x, batch), (batch, L, L), jnp.float32)
        row = {
            "kind": "forward",
            "mode": mode,
            "what": f"{name.split('(')[0]} forward, {mode} batch ({label}) {batch}x{L}x{L}",
            "batch": batch,
            "network": name,
            "params": n_params,
            "goal": GOALS[mode],
        }
        candidates.append((f"forward {mode}", row, forward, (state, x), None))

    loops, counts = [], {}
    for label, _, step, carry, analytic in candidates:
        flops = xla_flops(lambda carry, step=step: step(None, carry), carry)
        source = "xla"
        if flops is None:
            flops, source = analytic, ("analytic" if analytic else "none")
        counts[label] = (flops, source)
        loops.append(compile_loop(label, step, carry, key))
    res = measure(loops, repeats=sizes.repeats, min_time=sizes.min_time)

    mm_flops = counts["matmul"][0]
    rows = []
    for label, fields, *_ in candidates:
        flops, source = counts[label]
        step_s = res[label]["step_s"]
        fraction = None
        if flops is not None and mm_flops is not None:
            fraction = flops / mm_flops * paired_ratio(res, "matmul", label)
        rows.append(
            {
                **fields,
                "flops": flops,
                "flops_source": source,
                "time_us": 1e6 * step_s,
                "gflops": None if flops is None else flops / step_s / 1e9,
                "fraction": fraction,
                "compile_s": res[label]["compile_s"],
            }
        )
    return rows
