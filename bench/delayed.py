"""Delayed acceptance: exact evaluations per effective sample against exact MALA on phi^4.

The cost of a chain on an expensive exact system is the number of exact evaluations it makes.
Exact MALA evaluates the action and its gradient at every proposal (2 calls per step);
delayed acceptance (:mod:`uqmcmc.mcmc.delayed_acceptance`) runs ``k`` surrogate MALA steps
and then evaluates the exact action once (0 calls when the sub-chain did not move; the exact
gradient is never needed). Each row reports exact calls per effective sample (ArviZ bulk ESS)
of ``abs_m`` (``|M|``) and ``sd`` (the Schwinger-Dyson term, exact expectation 1), and the ratio
to exact MALA's (below 1: delayed acceptance needs fewer exact calls per effective sample).

Surrogates: an ``oracle`` energy surrogate, the exact action plus a small smooth local perturbation
``a sum_x phi_x^2 + b sum_x sin(2 phi_x)``; and, with ``ensemble=True``, a deep ensemble of the
gradient fitted by :func:`uqmcmc.uq.registry.fit` (a gradient surrogate: ``k = 1`` only, Christen &
Fox's general correction), at exact MALA's step and at multiples of it
(:attr:`DelayedSizes.ensemble_step_factors`: a screen that rejects costs no exact call, so the
cheapest step per effective sample is longer than exact MALA's); and, with ``energy=True``, the
main job's energy surrogate (``uqmcmc compare --surrogate energy``: a deep ensemble of
:class:`~uqmcmc.nets.EnergyNet` trained on energies and forces) with sub-chains of ``k`` steps
(:attr:`DelayedSizes.energy_substeps`, the short correction), ``steps // k`` steps each so that
every row does the same surrogate work. Every chain set starts from fields of an equilibrated
checkerboard run; each row's ``z |M|`` compares its ``<|M|>`` with a long exact checkerboard
run's and ``z sd`` its ``<sd>`` with the exact 1 (``|z| > 4``: the chain samples the wrong
distribution). Rows with a bulk ESS
below :data:`MIN_ESS` are marked ``reliable = False`` (their ESS is only an order of magnitude).

``python -m bench.delayed [--smoke] [--ensemble] [--energy] [--out FILE]``;
:func:`delayed_acceptance_cost` is the section function for :mod:`bench.runner`; its table spec is
in ``bench.report.SECTIONS``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc import _arviz
from uqmcmc.mcmc import EnergyDelta, ExactDelta, GradientDelta, checkerboard, mala
from uqmcmc.mcmc.delayed_acceptance import as_top_level_api as delayed_acceptance
from uqmcmc.targets import Phi4

__all__ = [
    "DelayedSizes",
    "FULL",
    "SMOKE",
    "PerturbedAction",
    "run_chain_set",
    "delayed_acceptance_cost",
    "results",
    "main",
]

OBSERVABLES = ("abs_m", "sd")

#: Below this bulk ESS a row's ESS, MCSE and z are only orders of magnitude.
MIN_ESS = 100


@dataclass(frozen=True)
class DelayedSizes:
    """Sizes of the delayed-acceptance benchmark (defaults: the full run)."""

    L: int = 8
    beta: float = 0.3  # the compare workflow's default point
    g: float = 1.0
    chains: int = 16
    equilibrate_sweeps: int = 500
    reference_sweeps: int = 20000  # exact checkerboard reference for z
    warmup: int = 500
    steps: int = 10000
    step_size: float = 0.032  # exact MALA's step tuned to acceptance 0.6 at L = 8, beta = 0.3
    substeps: tuple[int, ...] = (1, 4, 16)
    #: the ensemble's delayed-acceptance step, as multiples of ``step_size`` (a rejected screen
    #: costs no exact call, so a longer step pays; 2x moves about 20 % of the steps here)
    ensemble_step_factors: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5)
    perturbation: tuple[float, float] = (0.02, 0.02)  # (a, b) of the oracle surrogate
    ensemble: bool = False
    #: the energy ensemble's sub-chain lengths (each row runs ``steps // k`` steps)
    energy_substeps: tuple[int, ...] = (1, 4, 8)
    energy: bool = False
    n_train: int = 180
    epochs: int = 100  # the compare default: the "default strong surrogate"
    n_members: int = 10


FULL = DelayedSizes()
SMOKE = DelayedSizes(
    L=4, chains=2, equilibrate_sweeps=10, reference_sweeps=40, warmup=5, steps=40,
    substeps=(1, 4), energy_substeps=(1, 2), energy=True, n_train=8, epochs=1, n_members=2,
)  # fmt: skip


class PerturbedAction:
    """An energy "surrogate" backend: the exact action plus a smooth local perturbation.

    ``S-bar(phi) = S(phi) + a sum_x phi_x^2 + b sum_x sin(2 phi_x)``, no uncertainty; batched
    over leading axes like a UQ backend.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.7, 1.0)
    >>> backend = PerturbedAction(target, 0.1, 0.0)
    >>> mean, var = backend.predict_mean_var(jnp.ones((3, 4, 4)))
    >>> mean.shape, float(mean[0] - target.action(jnp.ones((4, 4)))), float(var[0])
    ((3,), 1.6, 0.0)
    """

    kind = "PerturbedAction"

    def __init__(self, target: Any, a: float, b: float):
        self.target, self.a, self.b = target, a, b
        self.in_shape = tuple(target.shape)

    def _one(self, phi: jax.Array) -> jax.Array:
        extra = self.a * jnp.sum(phi * phi) + self.b * jnp.sum(jnp.sin(2.0 * phi))
        return self.target.action(phi) + extra

    def predict_mean_var(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        batch = x.shape[: x.ndim - len(self.in_shape)]
        mean = jax.vmap(self._one)(x.reshape((-1, *self.in_shape))).reshape(batch)
        return mean, jnp.zeros_like(mean)

    def predict_draws(self, key: jax.Array, x: jax.Array, n: int) -> jax.Array:
        mean = self.predict_mean_var(x)[0]
        return jnp.broadcast_to(mean, (n, *mean.shape))

    def predict_linear(self, x: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The mean per input and a zero variance of ``sum(weights * f(x))`` (no uncertainty)."""
        return self.predict_mean_var(x)[0], jnp.zeros((), x.dtype)


def run_chain_set(alg, key, x0, *, warmup: int, steps: int, observe, calls_per_step=None):
    """Run ``alg`` from ``x0`` (chains first): the observables and the exact calls per step.

    ``calls_per_step`` is a constant (exact MALA: 2) or ``None`` to read
    ``info.exact_evaluations`` (delayed acceptance). Returns ``{"draws": {name: (chain,
    draw)}, "calls": total exact calls while sampling, "info": mean of each Info field,
    "compile_s", "sample_s"}``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> t = Phi4(4, 0.7, 1.0)
    >>> alg = delayed_acceptance(t, EnergyDelta(PerturbedAction(t, 0.0, 0.0)), 0.02, 2)
    >>> out = run_chain_set(alg, jax.random.key(0), jnp.zeros((2, 4, 4)), warmup=2, steps=5,
    ...                     observe=t.observables)
    >>> out["draws"]["abs_m"].shape, 0 <= out["calls"] <= 10, out["info"]["correction_acceptance"]
    ((2, 5), True, 1.0)
    """
    chains = x0.shape[0]

    def step(states, k):
        states, info = jax.vmap(alg.step)(jax.random.split(k, chains), states)
        obs = jax.vmap(observe)(states.position)
        return states, ({n: obs[n] for n in OBSERVABLES}, info)

    @jax.jit
    def run(key, states):
        k_warm, k_draw = jax.random.split(key)
        states = jax.lax.scan(step, states, jax.random.split(k_warm, warmup))[0]
        return jax.lax.scan(step, states, jax.random.split(k_draw, steps))[1]

    states = jax.vmap(alg.init)(x0)
    start = time.perf_counter()
    compiled = run.lower(key, states).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    draws, info = jax.block_until_ready(compiled(key, states))
    sample_s = time.perf_counter() - start
    if calls_per_step is None:
        calls = int(np.sum(info.exact_evaluations))
    else:
        calls = calls_per_step * steps * chains
    means = {k: float(np.mean(np.asarray(v, float))) for k, v in info._asdict().items()}
    return {
        "draws": {k: np.asarray(v, float).T for k, v in draws.items()},
        "calls": calls,
        "info": means,
        "compile_s": compile_s,
        "sample_s": sample_s,
    }


def _checkerboard(target: Phi4, x0: jax.Array, sweeps: int, key: jax.Array):
    """Exact checkerboard sweeps from ``x0``: the final fields and ``abs_m`` per sweep."""
    alg, chains = checkerboard(target, 1.0), x0.shape[0]

    @jax.jit
    def run(key, x0):
        def sweep(states, k):
            states = jax.vmap(alg.step)(jax.random.split(k, chains), states)[0]
            return states, jax.vmap(target.observables)(states.position)["abs_m"]

        states = jax.vmap(alg.init)(x0)
        states, abs_m = jax.lax.scan(sweep, states, jax.random.split(key, sweeps))
        return states.position, abs_m

    fields, abs_m = run(key, x0)
    return fields, np.asarray(abs_m, float).T


def _fit_ensemble(target: Phi4, sizes: DelayedSizes, key: jax.Array, surrogate: str) -> Any:
    """A deep ensemble trained as ``uqmcmc compare --surrogate SURROGATE`` trains it (the
    target's network, scaled to the data; an energy network on energies and forces)."""
    from uqmcmc.uq import registry
    from uqmcmc.uq.losses import energy_force_labels
    from uqmcmc.workflows.compare_config import CompareConfig
    from uqmcmc.workflows.training_data import make_dataset

    k_data, k_fit = jax.random.split(key)
    data = make_dataset(target, k_data, sizes.n_train + 20, n_test=20).train
    cfg = CompareConfig(L=sizes.L, beta=sizes.beta, g=sizes.g, n_members=sizes.n_members,
                        epochs=sizes.epochs, surrogate=surrogate)  # fmt: skip
    settings = cfg.backend_settings()
    settings = dataclasses.replace(settings, network=settings.net.fitted(data.x, data.action))
    labels = energy_force_labels(data.action, data.grad) if settings.forces else data.grad
    return registry.fit("ensemble", settings, data.x, labels, k_fit)


def delayed_acceptance_cost(sizes: Any, key: jax.Array) -> list[dict]:
    """The section: one row per chain set (exact MALA, then delayed acceptance per surrogate
    and ``k``), with exact calls per ESS and the ratio to exact MALA's.

    ``sizes`` is a :class:`DelayedSizes`, or any object with its fields (e.g. the runner's
    ``Sizes`` extended with them; missing fields take :data:`FULL`'s values).
    """
    s = DelayedSizes(
        **{f.name: getattr(sizes, f.name, getattr(FULL, f.name)) for f in dataclasses.fields(FULL)}
    )
    target = Phi4(s.L, s.beta, s.g)
    observe = target.observables
    zeros = jnp.zeros((s.chains, *target.shape))
    x0, _ = _checkerboard(target, zeros, s.equilibrate_sweeps, jax.random.fold_in(key, 0))
    _, ref_abs_m = _checkerboard(target, x0, s.reference_sweeps, jax.random.fold_in(key, 4))
    reference = _arviz.summarize(ref_abs_m)
    runs: dict[str, tuple[dict, int | None, str, int]] = {}
    kw = {"warmup": s.warmup, "steps": s.steps, "observe": observe}
    runs["exact MALA"] = (
        run_chain_set(
            mala(ExactDelta(target), s.step_size, "none"), jax.random.fold_in(key, 1), x0,
            calls_per_step=2, **kw,
        ),
        None,
        "exact",
        s.steps,
    )  # fmt: skip
    oracle = EnergyDelta(PerturbedAction(target, *s.perturbation), mode="mean")
    for i, k in enumerate(s.substeps):
        alg = delayed_acceptance(target, oracle, s.step_size, substeps=k)
        runs[f"DA oracle k={k}"] = (
            run_chain_set(alg, jax.random.fold_in(key, 10 + i), x0, **kw),
            k,
            "oracle energy",
            s.steps,
        )
    if s.ensemble:
        backend = _fit_ensemble(target, s, jax.random.fold_in(key, 2), "gradient")
        for factor in s.ensemble_step_factors:
            step = factor * s.step_size
            alg = delayed_acceptance(target, GradientDelta(backend, mode="mean"), step)
            runs[f"DA ensemble k=1, step x{factor:g}"] = (
                run_chain_set(alg, jax.random.fold_in(key, 3), x0, **kw),
                1,
                "ensemble gradient",
                s.steps,
            )
    if s.energy:
        backend = _fit_ensemble(target, s, jax.random.fold_in(key, 5), "energy")
        estimator = EnergyDelta(backend, mode="mean")
        for i, k in enumerate(s.energy_substeps):
            alg = delayed_acceptance(target, estimator, s.step_size, substeps=k)
            steps = max(s.steps // k, 1)
            runs[f"DA energy ensemble k={k}"] = (
                run_chain_set(alg, jax.random.fold_in(key, 20 + i), x0, **{**kw, "steps": steps}),
                k,
                "ensemble energy",
                steps,
            )
    rows = []
    base: dict[str, float] = {}
    for name, (run, k, surrogate, steps) in runs.items():
        info = run["info"]
        row = {
            "L": s.L,
            "chain": name,
            "surrogate": surrogate,
            "k": k,
            "chains": s.chains,
            "steps": steps,
            "exact_calls_per_step": run["calls"] / (steps * s.chains),
            "acceptance": info.get("acceptance_rate"),
            "subchain_acceptance": info.get("subchain_acceptance"),
            "correction_acceptance": info.get("correction_acceptance"),
            "nonfinite": info.get("nonfinite", 0.0) * steps * s.chains,
            "compile_s": run["compile_s"],
            "sample_s": run["sample_s"],
        }
        for obs in OBSERVABLES:
            summ = _arviz.summarize(run["draws"][obs])
            row[f"{obs}_mean"], row[f"{obs}_mcse"] = summ["mean"], summ["mcse"]
            row[f"ess_{obs}"] = summ["ess_bulk"]
            row[f"calls_per_ess_{obs}"] = run["calls"] / summ["ess_bulk"]
            if name == "exact MALA":
                base[obs] = row[f"calls_per_ess_{obs}"]
            row[f"ratio_{obs}"] = row[f"calls_per_ess_{obs}"] / base[obs]
        diff = row["abs_m_mean"] - reference["mean"]
        row["z_abs_m"] = diff / float(np.hypot(row["abs_m_mcse"], reference["mcse"]))
        row["z_sd"] = (row["sd_mean"] - 1.0) / row["sd_mcse"]  # <sd> = 1 exactly
        row["reference_abs_m"], row["reference_abs_m_mcse"] = reference["mean"], reference["mcse"]
        row["reliable"] = min(row["ess_abs_m"], row["ess_sd"]) >= MIN_ESS
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.delayed [--smoke] [--ensemble] [--energy] [--out FILE] [--seed N]``."""
    from bench.report import SECTIONS, render, table

    parser = argparse.ArgumentParser(
        prog="python -m bench.delayed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, numbers mean nothing")
    parser.add_argument("--ensemble", action="store_true", help="also a fitted deep ensemble")
    parser.add_argument(
        "--energy", action="store_true",
        help="also the main job's energy ensemble with k-step sub-chains",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the rows as JSON to this file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    if args.ensemble:
        sizes = dataclasses.replace(sizes, ensemble=True)
    if args.energy:
        sizes = dataclasses.replace(sizes, energy=True)
    if args.smoke:
        jax.config.update("jax_disable_most_optimizations", True)
    start = time.perf_counter()
    rows = delayed_acceptance_cost(sizes, jax.random.key(args.seed))
    spec = SECTIONS["delayed_acceptance"]
    header, cells = table(rows, spec["columns"])
    print(spec["title"], "", render(header, cells), "", spec["note"], sep="\n")
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps(results(rows, sizes, args.seed, time.perf_counter() - start,
                                               argv), indent=1))  # fmt: skip
    return 0


def results(rows: list[dict], sizes: DelayedSizes, seed: int, seconds: float, argv) -> dict:
    """The rows in :mod:`bench.runner`'s results layout (``meta``, ``sections``, ``goals``),
    so that :func:`bench.report.markdown` and :func:`bench.report.goals` read them.

    Examples
    --------
    >>> out = results([], SMOKE, 0, 1.0, ["--smoke"])
    >>> sorted(out), list(out["sections"]), out["meta"]["command"]
    (['goals', 'meta', 'sections'], ['delayed_acceptance'], 'python -m bench.delayed --smoke')
    """
    import datetime

    from bench.report import goals
    from bench.timing import machine

    out = {
        "meta": {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "mode": "delayed acceptance",
            "command": " ".join(["python -m bench.delayed", *(argv or sys.argv[1:])]),
            "machine": machine(),
            "sizes": dataclasses.asdict(sizes),
            "seed": seed,
            "total_s": seconds,
        },
        "sections": {"delayed_acceptance": {"rows": rows, "seconds": seconds}},
    }
    out["goals"] = goals(out)
    return out


if __name__ == "__main__":
    sys.exit(main())
