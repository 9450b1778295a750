"""Kernel overhead against BlackJAX (section 1) and time per step against lattice size (6).

Section 1 runs ``uqmcmc.mcmc.rmh`` / ``mala`` with :class:`~uqmcmc.mcmc.ExactDelta` and
``blackjax.normal_random_walk`` / ``blackjax.mala`` on the same phi^4 target, the same step
size and the same starting fields, each vmapped over the chains inside one compiled loop, and
reports the ratio of steps per second (uqmcmc / BlackJAX; goal >= 0.95).

With each pair it records a small profile of the compiled step: the number of jaxpr equations,
the number of optimised HLO instructions, and ``sampler_copies``, the number of HLO
instructions that come from the Gaussian proposal sampler (JAX's ``erf_inv``) divided by
BlackJAX's. A value above 1 means XLA fused the proposal noise into several consumers (the
action's neighbour reads, the accept/reject select, ...) and recomputes it in each: the cost
that dominated the measured gap. ``probe`` is uqmcmc's kernel with :class:`ExactDelta`
computing ``S(x') - S(x)`` from the two actions (``(-logdensity') - (-logdensity)``) instead of
``logdensity - logdensity'``: the same number, arranged the way BlackJAX arranges it, after
which XLA materialises the proposal once.
"""

from __future__ import annotations

import collections
from typing import Any

import blackjax
import jax

from bench.timing import algorithm_steps, compile_loop, loglog_slope, measure, paired_ratio
from uqmcmc.mcmc import ExactDelta, GradientDelta, checkerboard, mala, rmh
from uqmcmc.targets import Phi4
from uqmcmc.targets.base import logdensity_fn
from uqmcmc.workflows import PENALTY

__all__ = ["ExactFromActions", "kernel_overhead", "profile", "size_scaling"]


class ExactFromActions(ExactDelta):
    """:class:`ExactDelta` with ``S(x') - S(x)`` formed from the actions (the probe above)."""

    def estimate(self, key, x, x_new, cache, with_grad=False):
        estimate, new = super().estimate(key, x, x_new, cache, with_grad)
        return estimate._replace(mean=(-new.logdensity) - (-cache.logdensity)), new


def _jaxpr_size(jaxpr) -> int:
    n = 0
    for eqn in jaxpr.eqns:
        n += 1
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None:
                n += _jaxpr_size(getattr(inner, "jaxpr", inner))
    return n


def profile(alg, x: jax.Array, compiled: Any) -> dict[str, int]:
    """Equations in one step's jaxpr, instructions in the compiled loop, sampler instructions.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> alg = rmh(ExactDelta(Gaussian(jnp.zeros(3), jnp.eye(3))), 0.5)
    >>> p = profile(alg, jnp.zeros(3), None)
    >>> p["jaxpr_eqns"] > 10
    True
    """
    jaxpr = jax.make_jaxpr(alg.step)(jax.random.key(0), alg.init(x)).jaxpr
    out = {"jaxpr_eqns": _jaxpr_size(jaxpr)}
    if compiled is not None:
        lines = [ln for ln in compiled.as_text().splitlines() if " = " in ln]
        out["hlo_instructions"] = len(lines)
        out["sampler_instructions"] = sum("erf_inv" in ln for ln in lines)
    return out


def kernel_overhead(sizes: Any, key: jax.Array) -> list[dict]:
    """Section 1: steps per second of uqmcmc's RMH/MALA vs BlackJAX's on phi^4."""
    rows = []
    for L in sizes.kernel_L:
        target = Phi4(L, sizes.beta, sizes.g)
        for chains in sizes.kernel_chains:
            x0 = 0.5 * jax.random.normal(jax.random.fold_in(key, 100 * L + chains), (chains, L, L))
            pairs = {
                "rmh": (rmh, blackjax.normal_random_walk, sizes.rmh_step(L)),
                "mala": (mala, blackjax.mala, sizes.mala_step(L)),
            }
            for kind in sizes.kernel_kinds:
                ours, theirs, eps = pairs[kind]
                algs = {
                    "uqmcmc": ours(ExactDelta(target), eps),
                    "blackjax": theirs(logdensity_fn(target), eps),
                    "probe": ours(ExactFromActions(target), eps),
                }
                loops = [
                    compile_loop(name, algorithm_steps(alg, chains), jax.vmap(alg.init)(x0))
                    for name, alg in algs.items()
                ]
                res = measure(loops, repeats=sizes.repeats, min_time=sizes.min_time)
                prof = {loop.name: profile(algs[loop.name], x0[0], loop.compiled) for loop in loops}
                base = max(prof["blackjax"]["sampler_instructions"], 1)
                rows.append(
                    {
                        "kernel": kind,
                        "L": L,
                        "chains": chains,
                        "uqmcmc_us": 1e6 * res["uqmcmc"]["step_s"],
                        "blackjax_us": 1e6 * res["blackjax"]["step_s"],
                        "ratio": paired_ratio(res, "blackjax", "uqmcmc"),
                        "probe_ratio": paired_ratio(res, "blackjax", "probe"),
                        "goal": 0.95,
                        "uqmcmc_chain_steps_per_s": chains / res["uqmcmc"]["step_s"],
                        "blackjax_chain_steps_per_s": chains / res["blackjax"]["step_s"],
                        "compile_uqmcmc_s": res["uqmcmc"]["compile_s"],
                        "compile_blackjax_s": res["blackjax"]["compile_s"],
                        "sampler_copies": prof["uqmcmc"]["sampler_instructions"] / base,
                        "probe_sampler_copies": prof["probe"]["sampler_instructions"] / base,
                        "profile": prof,
                    }
                )
    return rows


def size_scaling(ensemble: Any | None, sizes: Any, key: jax.Array) -> list[dict]:
    """Section 6: time per step vs ``L`` for exact and surrogate kernels, log-log slope."""
    kernels: dict[str, Any] = {
        "checkerboard (sweep)": lambda t: checkerboard(t, 1.0),
        "mala exact": lambda t: mala(ExactDelta(t), sizes.mala_step(t.L)),
    }
    if ensemble is not None:
        for mode in sizes.surrogate_modes:
            n_draws = sizes.n_draws if mode == "draws" else None

            def make(t, mode=mode, n_draws=n_draws):
                est = GradientDelta(ensemble, rule="simpson", mode=mode, n_draws=n_draws)
                return mala(est, sizes.mala_step(t.L), acceptance=PENALTY[mode])

            kernels[f"mala ensemble {mode}"] = make
    times: dict[str, dict[int, float]] = collections.defaultdict(dict)
    compile_s: dict[str, dict[int, float]] = collections.defaultdict(dict)
    chains = sizes.scaling_chains
    for L in sizes.scaling_L:
        target = Phi4(L, sizes.beta, sizes.g)
        x0 = 0.5 * jax.random.normal(jax.random.fold_in(key, L), (chains, L, L))
        loops = []
        for name, make in kernels.items():
            alg = make(target)
            loops.append(compile_loop(name, algorithm_steps(alg, chains), jax.vmap(alg.init)(x0)))
        res = measure(loops, repeats=sizes.scaling_repeats, min_time=sizes.min_time)
        for name in kernels:
            times[name][L] = res[name]["step_s"]
            compile_s[name][L] = res[name]["compile_s"]
    rows = []
    for name in kernels:
        Ls = sorted(times[name])
        rows.append(
            {
                "kernel": name,
                "chains": chains,
                "step_us": {str(L): 1e6 * times[name][L] for L in Ls},
                "compile_s": {str(L): compile_s[name][L] for L in Ls},
                "slope": loglog_slope(Ls, [times[name][L] for L in Ls]) if len(Ls) > 1 else None,
                "slope_large": (
                    loglog_slope(Ls[-2:], [times[name][L] for L in Ls[-2:]])
                    if len(Ls) > 2
                    else None
                ),
            }
        )
    return rows
