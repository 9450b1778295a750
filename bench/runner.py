"""The benchmark runner: ``python -m bench [--smoke | --full] [--out DIR] [--sections ...]``.

Runs the sections in one process, prints each table as it completes and, at the end, the
table of the goals (each goal of the issue, measured or not, met or missed), and writes
``<out>/<date>-<host>.json`` (every number, the machine, the sizes, the goals) and
``<out>/latest.md`` (the goals, then the tables, as Markdown, for the README). ``--smoke`` uses
tiny sizes (CI: it checks that the runner works, its numbers mean nothing) and writes to
``bench/results/smoke/`` by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from bench import delayed, end_to_end, ess, kernels, report, sharding, surrogates, throughput
from bench.timing import machine
from uqmcmc.workflows import BACKENDS

__all__ = ["Sizes", "FULL", "SMOKE", "run", "main"]

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    """Everything that sets the cost of a run (the defaults are the full benchmark)."""

    beta: float = 0.7
    g: float = 1.0
    repeats: int = 5
    min_time: float = 0.05
    # 1. kernel overhead
    kernel_L: tuple[int, ...] = (8, 16, 32)
    kernel_chains: tuple[int, ...] = (1, 16, 256)
    kernel_kinds: tuple[str, ...] = ("rmh", "mala")
    # backends (2, 3, 4, 6)
    backends: tuple[str, ...] = BACKENDS
    train_L: int = 8
    exact_data: bool = True
    n_train: int = 180
    epochs: int = 40
    n_members: int = 10
    svi_steps: int = 1000
    gp_steps: int = 200
    n_draws: int = 8
    surrogate_modes: tuple[str, ...] = ("mean", "draws")
    # 2. surrogate overhead
    surrogate_chains: tuple[int, ...] = (16,)
    # 3. ensemble scaling
    ensemble_batches: tuple[int, ...] = (2, 8, 32, 128, 512)
    train_epochs: int = 10
    # throughput: matmul size; forward-pass batches chains x nodes (x n_draws) of train_L fields
    throughput_n: int = 1024
    throughput_chains: int = 16
    throughput_nodes: int = 3
    # 4. ESS per second
    ess_L: tuple[int, ...] = (8, 16)
    ess_chains: int = 16
    ess_exact_warmup: int = 1000
    ess_exact_steps: int = 4000
    ess_warmup: int = 200
    ess_steps: int = 10000
    ess_thin: int = 5
    ess_budget_s: float = 10.0
    # 5. end to end: each command cold (a fresh compilation cache); those of e2e_warm are rerun
    # right after with the same cache (warm)
    e2e_commands: tuple[tuple[str, ...], ...] = (("compare", "--quick", "--no-progress"),)
    e2e_warm: tuple[tuple[str, ...], ...] = (("compare", "--quick", "--no-progress"),)
    e2e_timeout: float = 3600.0
    # 6. scaling with size
    scaling_L: tuple[int, ...] = (8, 16, 32, 64)
    scaling_chains: int = 16
    scaling_repeats: int = 3

    def mala_step(self, L: int) -> float:
        """MALA step size: 0.02 at ``L = 8`` (acceptance ~0.6 at beta = 0.7), ``~ V^(-1/3)``."""
        return 0.02 * (8 / L) ** (2 / 3)

    def rmh_step(self, L: int) -> float:
        """RMH proposal scale: 0.1 at ``L = 8``, ``~ V^(-1/2)``."""
        return 0.1 * 8 / L


FULL = Sizes()

SMOKE = Sizes(
    repeats=2, min_time=0.002, kernel_L=(4,), kernel_chains=(2,), kernel_kinds=("mala",),
    backends=("ensemble",), train_L=4, exact_data=False, n_train=8, epochs=1, n_members=2,
    n_draws=2, surrogate_modes=("draws",),
    surrogate_chains=(2,), ensemble_batches=(4,), train_epochs=3, throughput_n=128,
    throughput_chains=2, ess_L=(4,),
    ess_chains=2, ess_exact_warmup=10, ess_exact_steps=40, ess_warmup=10, ess_steps=40,
    ess_thin=2, e2e_commands=(("exact", "--help"),), e2e_warm=(("exact", "--help"),),
    e2e_timeout=300.0, scaling_L=(4, 6),
    scaling_chains=2, scaling_repeats=2,
)  # fmt: skip

#: Sections in run order; ``needs`` says which use fitted backends.
ORDER = ("kernel_overhead", "surrogate_overhead", "ensemble_scaling", "throughput", "ess",
         "end_to_end", "size_scaling", "delayed_acceptance", "chain_parallel")  # fmt: skip


def _sections(sizes: Sizes, key: jax.Array, fitted: Callable[[], dict]) -> dict[str, Callable]:
    def ensemble():
        return fitted()["backends"].get("ensemble")

    def ensemble_scaling():
        if ensemble() is None:
            raise ValueError("ensemble scaling needs the 'ensemble' backend")
        return surrogates.ensemble_scaling(ensemble(), fitted()["data"], sizes, key)

    return {
        "kernel_overhead": lambda: kernels.kernel_overhead(sizes, key),
        "surrogate_overhead": lambda: surrogates.surrogate_overhead(
            fitted()["backends"], sizes, key
        ),
        "ensemble_scaling": ensemble_scaling,
        "throughput": lambda: throughput.throughput(sizes, key),
        "ess": lambda: ess.ess_per_second(fitted()["backends"], sizes, key),
        "end_to_end": lambda: end_to_end.end_to_end(sizes),
        "size_scaling": lambda: kernels.size_scaling(ensemble(), sizes, key),
        "delayed_acceptance": lambda: delayed.delayed_acceptance_cost(
            delayed.SMOKE if sizes == SMOKE else dataclasses.replace(delayed.FULL, energy=True),
            key,
        ),
        "chain_parallel": lambda: sharding.chain_parallel(
            sharding.SMOKE if sizes == SMOKE else sharding.FULL
        ),
    }


def _clean(obj: Any) -> Any:
    """JSON-ready: numpy scalars to Python, non-finite floats to ``None``, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic | np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def host_slug(info: dict) -> str:
    """A short file-name-safe machine name: CPU model and cores, e.g. ``amd-epyc-2c``.

    Examples
    --------
    >>> host_slug({"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "cores_available": 4})
    'intel-xeon-cpu-2-20ghz-4c'
    """
    cpu = re.sub(r"\((r|tm)\)", "", info["cpu"].lower())
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-")[:40].strip("-")
    return f"{cpu or 'cpu'}-{info['cores_available']}c"


def run(
    sizes: Sizes,
    *,
    mode: str,
    out: Path,
    sections: tuple[str, ...] = ORDER,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run ``sections`` and write the JSON and Markdown results to ``out``; returns the dict."""
    unknown = set(sections) - set(ORDER)
    if unknown:
        raise ValueError(f"sections must be among {ORDER}, got {sorted(unknown)}")
    start = time.perf_counter()
    now = datetime.datetime.now()
    if mode == "smoke":  # compile fast; the numbers mean nothing anyway
        jax.config.update("jax_disable_most_optimizations", True)
    info = machine()
    info["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    key = jax.random.key(seed)
    cache: dict[str, Any] = {}

    def fitted() -> dict:
        if "fit" not in cache:
            echo(f"fitting backends {', '.join(sizes.backends)} ...")
            cache["fit"] = surrogates.fit_backends(sizes, jax.random.fold_in(key, 99))
            echo("  " + ", ".join(f"{k} {v:.1f} s" for k, v in cache["fit"]["fit_s"].items()))
        return cache["fit"]

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{now:%Y-%m-%d}-{host_slug(info)}.json"
    results: dict[str, Any] = {
        "meta": {
            "date": now.isoformat(timespec="seconds"),
            "mode": mode,
            "machine": info,
            "sizes": dataclasses.asdict(sizes),
            "seed": seed,
            "results_file": path.name,
        },
        "sections": {},
    }
    runners = _sections(sizes, key, fitted)
    for name in (s for s in ORDER if s in sections):
        t0 = time.perf_counter()
        try:
            section = {"rows": runners[name]()}
        except Exception as err:  # a failed section is reported, the others still run
            section = {"rows": [], "error": f"{type(err).__name__}: {err}"}
        section["seconds"] = time.perf_counter() - t0
        results["sections"][name] = section
        echo("\n" + report.section_text(name, section))
    if "fit" in cache:
        results["meta"]["fit_s"] = cache["fit"]["fit_s"]
    results["meta"]["total_s"] = time.perf_counter() - start
    results = _clean(results)
    results["goals"] = report.goals(results)
    echo("\n" + report.goals_text(results["goals"]))
    path.write_text(json.dumps(results, indent=1))
    (out / "latest.md").write_text(report.markdown(results))
    echo(f"\nwrote {path} and {out / 'latest.md'} ({results['meta']['total_s']:.0f} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny sizes (CI), no meaning")
    size.add_argument("--full", action="store_true", help="also time the default compare run")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results)")
    parser.add_argument("--sections", help="comma-separated subset of: " + ",".join(ORDER))
    parser.add_argument("--backends", help="comma-separated subset of: " + ",".join(BACKENDS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    if args.full:
        commands = (*sizes.e2e_commands, ("compare", "--no-progress"))
        sizes = dataclasses.replace(sizes, e2e_commands=commands)
    if args.backends:
        chosen = tuple(b.strip() for b in args.backends.split(",") if b.strip())
        bad = [b for b in chosen if b not in BACKENDS]
        if bad or not chosen:
            parser.error(f"--backends must be a non-empty subset of {BACKENDS}, got {bad}")
        sizes = dataclasses.replace(sizes, backends=chosen)
    sections = ORDER
    if args.sections:
        sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
        bad = [s for s in sections if s not in ORDER]
        if bad or not sections:
            parser.error(f"--sections must be a non-empty subset of {ORDER}, got {bad}")
    mode = "smoke" if args.smoke else ("full" if args.full else "default")
    out = args.out or (RESULTS / "smoke" if args.smoke else RESULTS)
    run(sizes, mode=mode, out=out, sections=sections, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
