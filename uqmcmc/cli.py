"""The ``uqmcmc`` command: parses arguments, calls the library, prints; nothing more."""

from __future__ import annotations

import argparse
import math
import os
import sys

from uqmcmc import _compile_cache
from uqmcmc._validation import in_words
from uqmcmc.targets.loading import parse_params
from uqmcmc.workflows import (
    BACKENDS,
    CompareConfig,
    ExactConfig,
    describe_exact,
    format_comparison,
    format_table,
    run_compare,
    run_exact,
)
from uqmcmc.workflows.compare_config import read_toml
from uqmcmc.workflows.exact import unmixed, untabulated
from uqmcmc.workflows.system import SURROGATES


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(n) for n in text.replace("x", ",").split(",") if n.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be sizes like 13,3, got {text!r}") from None


def _target_options(parser: argparse.ArgumentParser, default: str | None, where: str) -> None:
    """``--target``, ``--param`` and ``--shape``, the same for every command."""
    parser.add_argument(
        "--target", default=default, help="phi4 (default), lj, or your own: "
        "package.module:Name or path/to/file.py:Name (a class or function with action(x) and "
        "grad(x))",
    )  # fmt: skip
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE",
        help=f"a parameter of the target (repeatable; {where})",
    )  # fmt: skip
    parser.add_argument("--shape", type=_shape, help="shape of a configuration, for a target "
                        "without a `shape` attribute (e.g. 13,3)")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uqmcmc",
        description="Monte Carlo with machine-learned actions: exact chains, surrogates, "
        "uncertainty-aware kernels and their comparison.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser(
        "exact", help="exact reference chains (phi^4 by checkerboard Metropolis, any other "
        "target by tuned exact MALA)",
    )  # fmt: skip
    _target_options(ex, "phi4", "e.g. --param temperature=0.5")
    ex.add_argument("--L", type=int, default=8, help="phi^4 lattice size (default 8)")
    ex.add_argument("--beta", type=_finite_float, default=0.7, help="phi^4 hopping (default 0.7)")
    ex.add_argument(
        "--g", type=_finite_float, default=1.0, help="phi^4 quartic coupling (default 1)"
    )
    ex.add_argument("--chains", type=int, default=16, help="independent chains (default 16)")
    ex.add_argument("--steps", type=int, default=20_000,
                    help="sweeps (phi^4) or MALA steps per chain (default 20000)")  # fmt: skip
    ex.add_argument("--warmup", type=int, default=2_000, help="discarded steps (default 2000)")
    ex.add_argument("--thin", type=int, default=10, help="keep every n-th step (default 10)")
    ex.add_argument("--step-size", type=_finite_float, help="checkerboard proposal half-width "
                    "(default 1) or a fixed MALA step (default: tuned in warm-up)")  # fmt: skip
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--out", default="uqmcmc-exact", help="output folder (default uqmcmc-exact)")
    ex.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ex.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out of an earlier run"
    )
    ex.add_argument(
        "--resume",
        metavar="DIR",
        help="continue an unfinished run from its last checkpoint, with its own settings: DIR "
        "is its --out, or the OUT.incomplete folder kept after an error or Ctrl-C",
    )
    cmp = sub.add_parser(
        "compare",
        help="surrogate chains of every UQ backend against the exact chain, with a report",
    )
    d = CompareConfig()
    _target_options(cmp, None, "also a [params] table in --config")
    cmp.add_argument(
        "--surrogate", choices=SURROGATES,
        help="what the surrogates predict (default: the target's choice; phi^4 gradient, "
        "others energy)",
    )  # fmt: skip
    cmp.add_argument(
        "--train-param", action="append", default=[], metavar="KEY=VALUE",
        help="draw the training set at another value of a target parameter (a domain shift, "
        "e.g. --train-param temperature=0.3; repeatable; also a [train_params] table)",
    )  # fmt: skip
    cmp.add_argument("--L", type=int, help=f"phi^4 lattice size (default {d.L})")
    cmp.add_argument("--beta", type=_finite_float, help=f"phi^4 hopping (default {d.beta:g})")
    cmp.add_argument("--g", type=_finite_float, help=f"phi^4 quartic coupling (default {d.g:g})")
    cmp.add_argument(
        "--backends",
        help="comma-separated backend names (default: " + ",".join(BACKENDS) + "; also any "
        "backend registered through the 'uqmcmc.backends' entry points)",
    )
    cmp.add_argument(
        "--steps", type=int, help=f"MALA steps per surrogate chain (default {d.steps})"
    )
    cmp.add_argument("--chains", type=int, help=f"chains per run (default {d.chains})")
    cmp.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    cmp.add_argument("--out", help=f"report folder (default {d.out})")
    cmp.add_argument("--quick", action="store_true", help="a short version (~3 min)")
    cmp.add_argument("--config", help="TOML file of settings (command-line options win)")
    cmp.add_argument("--no-progress", action="store_true", help="hide the progress display")
    cmp.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out of an earlier run"
    )
    cmp.add_argument(
        "--resume",
        metavar="DIR",
        help="continue an unfinished run with its own settings: DIR is its --out, or the "
        "OUT.incomplete folder kept after an error or Ctrl-C",
    )
    return parser


#: Settings whose command-line option is not ``--<name>``.
_OPTIONS = {"step_size": "--step-size", "params": "--param", "train_params": "--train-param"}


def _option(name: str) -> str:
    return _OPTIONS.get(name, "--" + name)


def _compare_config(args) -> tuple[CompareConfig, dict[str, str]]:
    """The compare settings and how the user named each: ``--steps`` for an option given on
    the command line, ``steps (in FILE)`` for a key of the TOML file."""
    overrides = {
        k: getattr(args, k)
        for k in ("target", "shape", "surrogate", "L", "beta", "g", "steps", "chains", "seed",
                  "out")
        if getattr(args, k) is not None
    }  # fmt: skip
    for table, given in (("params", args.param), ("train_params", args.train_param)):
        if given:  # on top of the TOML file's table
            in_file = read_toml(args.config).get(table, {}) if args.config else {}
            overrides[table] = {**in_file, **parse_params(given)}
    if args.backends is not None:
        overrides["backends"] = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if args.quick:
        overrides["quick"] = True
    words: dict[str, str] = {}
    if args.config:
        words = {k: f"{k} (in {args.config})" for k in read_toml(args.config)}
    words.update({k: _option(k) for k in overrides})
    if args.config:
        return CompareConfig.from_toml(args.config, **overrides), words
    if overrides.pop("quick", False):
        return CompareConfig.quick_config(**overrides), words
    return CompareConfig(**overrides), words


def _check_resume(parser: argparse.ArgumentParser, args) -> None:
    """``--resume`` takes the settings the run started with: refuse options that set others
    (any option but ``--resume``, ``--no-progress`` and ``--target`` given a value other than
    its default; ``--target`` confirms a target of the user's own code and must agree)."""
    defaults = vars(parser.parse_args([args.command]))
    given = [
        _option(k)
        for k, v in vars(args).items()
        if k not in ("command", "resume", "no_progress", "target") and v != defaults[k]
    ]
    if given:
        raise ValueError(
            f"--resume continues a run with the settings it started with: drop {', '.join(given)}"
        )


def _exit_at_once(code: int) -> None:
    """Leave now: worker threads still finishing a compiled step would otherwise hold the
    interpreter's exit for many seconds."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``uqmcmc`` command; returns the exit code (2 on a bad argument).

    ``argv`` defaults to the command line. ``uqmcmc exact`` runs exact reference chains (of
    phi^4 by default; ``--target lj`` or ``--target package.module:Name`` with ``--param
    key=value`` for any other) and writes ``OUT/exact.nc``; ``uqmcmc compare`` runs every UQ
    backend against them and writes a report (``uqmcmc compare --quick`` for a short version).

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
    _compile_cache.enable()  # a rerun with the same shapes skips compilation
    words = {f: _option(f) for f in ("L", "beta", "g", "chains", "steps", "warmup", "thin",
                                      "step_size", "seed", "out", "target", "params",
                                      "shape")}  # fmt: skip
    try:
        if args.command == "exact":
            if args.resume is not None:
                _check_resume(parser, args)
                confirm = {"target": args.target} if args.target != "phi4" else {}
                res = run_exact(progress=not args.no_progress, resume=args.resume, **confirm)
            else:
                cfg = ExactConfig(
                    L=args.L, beta=args.beta, g=args.g, chains=args.chains, steps=args.steps,
                    warmup=args.warmup, thin=args.thin, step_size=args.step_size,
                    seed=args.seed, out=args.out, target=args.target,
                    params=parse_params(args.param), shape=args.shape,
                )  # fmt: skip
                res = run_exact(cfg, progress=not args.no_progress, overwrite=args.overwrite)
            print(describe_exact(res))
            print(format_table(res.rows))
            if warning := unmixed(res.rows):
                print(warning)
            if skipped := untabulated(res):
                print(f"not tabulated (too many components; in exact.nc): {', '.join(skipped)}")
            print(f"wrote {res.path}")
        elif args.command == "compare":
            if args.resume is not None:
                _check_resume(parser, args)
                res = run_compare(progress=not args.no_progress, resume=args.resume,
                                  target=args.target)  # fmt: skip
            else:
                cfg, words = _compare_config(args)
                res = run_compare(cfg.validate(), progress=not args.no_progress,
                                  overwrite=args.overwrite)  # fmt: skip
            system = res.config.system()
            print(f"{system.name}: {res.config.surrogate_kind} surrogates")
            for line in system.describe_defaults(surrogates=True):
                print(f"  default {line}")
            print(format_comparison(res.comparison))
            print(f"report: {res.out / 'report.html'} (and report.md, CSV, netCDF per run)")
    except (ValueError, OSError, TypeError) as err:
        print(f"uqmcmc {args.command}: error: {in_words(err, words)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        kept = getattr(err, "uqmcmc_kept", "interrupted; nothing was written")
        print(f"uqmcmc {args.command}: {kept}", file=sys.stderr)
        if argv is None:  # the command itself, not a call from Python
            _exit_at_once(130)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
