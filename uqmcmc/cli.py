"""The ``uqmcmc`` command: parses arguments, calls the library, prints; nothing more."""

from __future__ import annotations

import argparse
import math
import sys

from uqmcmc.workflows import (
    BACKENDS,
    CompareConfig,
    ExactConfig,
    format_comparison,
    format_table,
    run_compare,
    run_exact,
)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uqmcmc",
        description="Monte Carlo with machine-learned actions: exact chains, surrogates, "
        "uncertainty-aware kernels and their comparison.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exact", help="exact phi^4 reference chains (checkerboard Metropolis)")
    ex.add_argument("--L", type=int, default=8, help="lattice size (default 8)")
    ex.add_argument("--beta", type=_finite_float, default=0.7, help="hopping (default 0.7)")
    ex.add_argument("--g", type=_finite_float, default=1.0, help="quartic coupling (default 1)")
    ex.add_argument("--chains", type=int, default=16, help="independent chains (default 16)")
    ex.add_argument("--steps", type=int, default=20_000, help="sweeps per chain (default 20000)")
    ex.add_argument("--warmup", type=int, default=2_000, help="discarded sweeps (default 2000)")
    ex.add_argument("--thin", type=int, default=10, help="keep every n-th sweep (default 10)")
    ex.add_argument("--step-size", type=_finite_float, default=1.0, help="proposal half-width")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--out", default="uqmcmc-exact", help="output folder (default uqmcmc-exact)")
    ex.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cmp = sub.add_parser(
        "compare",
        help="surrogate chains of every UQ backend against the exact chain, with a report",
    )
    cmp.add_argument("--L", type=int, help="lattice size (default 8)")
    cmp.add_argument("--beta", type=_finite_float, help="hopping (default 0.7)")
    cmp.add_argument("--g", type=_finite_float, help="quartic coupling (default 1)")
    cmp.add_argument(
        "--backends",
        help="comma-separated backend names (default: " + ",".join(BACKENDS) + "; also any "
        "backend registered through the 'uqmcmc.backends' entry points)",
    )
    cmp.add_argument("--steps", type=int, help="MALA steps per surrogate chain (default 6000)")
    cmp.add_argument("--chains", type=int, help="chains per run (default 16)")
    cmp.add_argument("--seed", type=int, help="random seed (default 0)")
    cmp.add_argument("--out", help="report folder (default uqmcmc-report)")
    cmp.add_argument("--quick", action="store_true", help="a short version (~3 min)")
    cmp.add_argument("--config", help="TOML file of settings (command-line options win)")
    cmp.add_argument("--no-progress", action="store_true", help="hide the progress display")
    return parser


def _compare_config(args) -> CompareConfig:
    overrides = {
        k: getattr(args, k)
        for k in ("L", "beta", "g", "steps", "chains", "seed", "out")
        if getattr(args, k) is not None
    }
    if args.backends:
        overrides["backends"] = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if args.quick:
        overrides["quick"] = True
    if args.config:
        return CompareConfig.from_toml(args.config, **overrides)
    if overrides.pop("quick", False):
        return CompareConfig.quick_config(**overrides)
    return CompareConfig(**overrides)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``uqmcmc`` command; returns the exit code (2 on a bad argument).

    ``argv`` defaults to the command line. ``uqmcmc exact`` runs exact phi^4 reference chains
    and writes ``OUT/exact.nc``; ``uqmcmc compare`` runs every UQ backend against them and
    writes a report (``uqmcmc compare --quick`` for a short version).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     code = main(["exact", "--L", "4", "--chains", "2", "--steps", "50", "--warmup", "0",
    ...                  "--thin", "1", "--out", out, "--no-progress"])
    phi^4 L=4 beta=0.7 g=1.0: 2 chains x 50 sweeps (thin 1), exact checkerboard Metropolis
    observable              mean      error  ESS bulk  ESS tail   R-hat
    -------------------------------------------------------------------
    abs_m ...
    xi ...
    wrote .../exact.nc
    >>> code
    0
    >>> main(["exact", "--L", "1", "--out", "unused"])  # the error goes to stderr
    2
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "exact":
            cfg = ExactConfig(
                L=args.L,
                beta=args.beta,
                g=args.g,
                chains=args.chains,
                steps=args.steps,
                warmup=args.warmup,
                thin=args.thin,
                step_size=args.step_size,
                seed=args.seed,
                out=args.out,
            )
            res = run_exact(cfg, progress=not args.no_progress)
            print(
                f"phi^4 L={args.L} beta={args.beta} g={args.g}: {args.chains} chains x "
                f"{args.steps} sweeps (thin {args.thin}), exact checkerboard Metropolis"
            )
            print(format_table(res.rows))
            print(f"wrote {res.path}")
        elif args.command == "compare":
            cfg = _compare_config(args).validate()
            res = run_compare(cfg, progress=not args.no_progress)
            print(format_comparison(res.comparison))
            print(f"report: {res.out / 'report.html'} (and report.md, CSV, netCDF per run)")
    except (ValueError, OSError) as err:
        print(f"uqmcmc {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
