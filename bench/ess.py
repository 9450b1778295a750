"""Effective samples per second of |M| and the action density (section 4).

Chains: exact checkerboard Metropolis (one step = one sweep), exact MALA, and each backend's
penalty chain (MALA on ``GradientDelta(backend, mode="draws")`` with the estimated-variance
Ceperley-Dewing rule, as in ``uqmcmc compare``). Every chain set starts from fields of an
equilibrated exact run; one compiled program (run lengths are traced arguments) warms up and
then samples, keeping every ``thin``-th state, and compilation, warm-up and sampling are timed
apart. A slow surrogate gets fewer steps (``budget_s`` of sampling per chain set), flagged in
the results.

ESS is ArviZ's bulk ESS. A fast chain that samples the wrong distribution is no use, so each
row also reports ``<|M|>`` with its MCSE and its z-score against the exact checkerboard chain.
Rows with an ESS below :data:`MIN_ESS` or fewer than :data:`MIN_DRAWS` draws per chain are
marked ``reliable = False``: such a run (a slow
surrogate cut to its time budget) gives only an order of magnitude of ESS, MCSE and z.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc import _arviz
from uqmcmc.mcmc import ExactDelta, GradientDelta, checkerboard, mala
from uqmcmc.targets import Phi4
from uqmcmc.workflows import PENALTY

__all__ = ["sampling_program", "timed_chains", "ess_per_second"]

OBSERVABLES = ("abs_m", "action_density")

#: Below this bulk ESS, or this many kept draws per chain, a run is too short for a
#: trustworthy ESS or MCSE (flagged, not hidden).
MIN_ESS = 100
MIN_DRAWS = 50


def _observe(target: Phi4):
    def observe(x):
        return {
            "abs_m": jnp.abs(jnp.mean(x)),
            "action_density": target.action(x) / target.volume,
        }

    return observe


def sampling_program(alg, chains: int, max_draws: int, thin: int, observe):
    """``run(key, states, warmup, num_draws) -> (states, draws, accepted)``, jitted.

    ``warmup`` steps, then ``num_draws * thin`` steps keeping every ``thin``-th state's
    ``observe(position)``; both counts are traced, so one compilation serves any run length
    up to ``max_draws`` draws. ``draws`` leaves are ``(max_draws, chain)`` (rows past
    ``num_draws`` are zero), ``accepted`` the mean ``is_accepted`` of each kept step.
    """

    def step(states, key):
        return jax.vmap(alg.step)(jax.random.split(key, chains), states)

    def run(key, states, warmup, num_draws):
        k_warm, k_draw = jax.random.split(key)
        states = jax.lax.fori_loop(
            0, warmup, lambda i, s: step(s, jax.random.fold_in(k_warm, i))[0], states
        )
        shapes = jax.eval_shape(jax.vmap(observe), states.position)
        buf = jax.tree.map(lambda a: jnp.zeros((max_draws, *a.shape), a.dtype), shapes)

        def draw(i, carry):
            states, buf, acc = carry
            keys = jax.random.split(jax.random.fold_in(k_draw, i), thin)
            states, info = jax.lax.scan(step, states, keys)
            buf = jax.tree.map(lambda b, o: b.at[i].set(o), buf, jax.vmap(observe)(states.position))
            acc = acc.at[i].set(jnp.mean(jnp.asarray(info.is_accepted, jnp.float32)))
            return states, buf, acc

        carry = (states, buf, jnp.zeros(max_draws))
        return jax.lax.fori_loop(0, num_draws, draw, carry)

    return jax.jit(run)


def timed_chains(
    alg, key, x0, *, warmup: int, steps: int, thin: int, observe, budget_s: float = float("inf")
) -> dict:
    """Compile, warm up, then sample ``steps`` steps of every chain, or fewer to fit a budget.

    One probe draw measures the time per step; warm-up is cut to at most half of
    ``budget_s`` and sampling to ``budget_s`` (never below 4 draws). Compilation, warm-up and
    sampling are timed apart.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> t = Phi4(4, 0.5, 1.0)
    >>> out = timed_chains(checkerboard(t, 1.0), jax.random.key(0), jnp.zeros((2, 4, 4)),
    ...                    warmup=10, steps=20, thin=2, observe=_observe(t))
    >>> out["draws"]["abs_m"].shape, out["steps"], out["sample_s"] > 0
    ((2, 10), 20, True)
    """
    chains = x0.shape[0]
    max_draws = max(steps // thin, 4)
    states = jax.vmap(alg.init)(x0)
    program = sampling_program(alg, chains, max_draws, thin, observe)
    keys = jax.random.split(key, 3)
    start = time.perf_counter()
    compiled = program.lower(keys[0], states, jnp.int32(0), jnp.int32(1)).compile()
    compile_s = time.perf_counter() - start

    def call(k, states, warm, draws):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(k, states, jnp.int32(warm), jnp.int32(draws)))
        return out, time.perf_counter() - start

    (states, _, _), probe_s = call(keys[0], states, 0, 1)
    step_s = probe_s / thin  # an over-estimate (fixed per-call costs), refined by the warm-up
    warm = int(min(warmup, max(0.5 * budget_s / step_s, 0)))
    (states, _, _), warm_s = call(keys[1], states, warm, 0)
    if warm >= 10 * thin:
        step_s = warm_s / warm
    num_draws = int(min(max_draws, max(4, budget_s / (step_s * thin))))
    (states, draws, accepted), sample_s = call(keys[2], states, 0, num_draws)
    return {
        "states": states,
        "draws": {k: np.asarray(v[:num_draws], float).T for k, v in draws.items()},
        "acceptance": float(np.mean(accepted[:num_draws])),
        "compile_s": compile_s,
        "warmup_steps": warm,
        "warmup_s": warm_s,
        "sample_s": sample_s,
        "steps": num_draws * thin,
        "num_draws": num_draws,
        "budget_limited": num_draws < steps // thin,
    }


def ess_per_second(backends: dict[str, Any], sizes: Any, key: jax.Array) -> list[dict]:
    """Section 4: ESS per second of |M| and S/V at each ``L`` in ``sizes.ess_L``."""
    rows = []
    chains = sizes.ess_chains
    for L in sizes.ess_L:
        target = Phi4(L, sizes.beta, sizes.g)
        observe = _observe(target)
        k_L = jax.random.fold_in(key, L)
        x0 = jax.random.normal(jax.random.fold_in(k_L, 0), (chains, L, L))
        exact = timed_chains(  # the reference: no time budget
            checkerboard(target, 1.0), jax.random.fold_in(k_L, 1), x0,
            warmup=sizes.ess_exact_warmup, steps=sizes.ess_exact_steps, thin=1, observe=observe,
        )  # fmt: skip
        start_fields = exact["states"].position
        eps = sizes.mala_step(L)
        chain_sets: dict[str, Any] = {"exact MALA": mala(ExactDelta(target), eps, "none")}
        for name, backend in backends.items():
            est = GradientDelta(backend, rule="simpson", mode="draws", n_draws=sizes.n_draws)
            chain_sets[f"{name} draws+penalty"] = mala(est, eps, PENALTY["draws"])
        runs = {"exact checkerboard": exact}
        for i, (name, alg) in enumerate(chain_sets.items()):
            runs[name] = timed_chains(
                alg, jax.random.fold_in(k_L, 2 + i), start_fields, warmup=sizes.ess_warmup,
                steps=sizes.ess_steps, thin=sizes.ess_thin, observe=observe,
                budget_s=sizes.ess_budget_s,
            )  # fmt: skip
        reference = _arviz.summarize(exact["draws"]["abs_m"])
        for name, run in runs.items():
            row = {
                "L": L,
                "chain": name,
                "chains": chains,
                "steps": run["steps"],
                "budget_limited": run["budget_limited"],
                "warmup_steps": run["warmup_steps"],
                "acceptance": run["acceptance"],
                "compile_s": run["compile_s"],
                "sample_s": run["sample_s"],
                "step_us": 1e6 * run["sample_s"] / run["steps"],
            }
            for obs in OBSERVABLES:
                s = _arviz.summarize(run["draws"][obs])
                row[f"{obs}_mean"], row[f"{obs}_mcse"] = s["mean"], s["mcse"]
                row[f"ess_{obs}"] = s["ess_bulk"]
                row[f"ess_per_s_{obs}"] = s["ess_bulk"] / run["sample_s"]
            ess_min = min(row["ess_abs_m"], row["ess_action_density"])
            row["reliable"] = ess_min >= MIN_ESS and run["num_draws"] >= MIN_DRAWS
            row["z_abs_m"] = None
            if run is not exact:
                diff = row["abs_m_mean"] - reference["mean"]
                row["z_abs_m"] = diff / float(np.hypot(row["abs_m_mcse"], reference["mcse"]))
            rows.append(row)
    return rows
