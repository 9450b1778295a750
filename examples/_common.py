"""What every example shares: its command line, its output folder, its figures and closing note.

Not part of the library: each example imports it from its own folder (``python examples/x.py``
puts that folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import textwrap
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# ArviZ 0.23 warns about its coming refactor once a day on import; nothing to act on here.
warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")


class Example:
    """One example run: parsed arguments, the output folder, timing, and the closing note.

    ``Example(__file__, description)`` parses ``--smoke`` (tiny sizes, for the tests),
    ``--out`` (default ``./uqmcmc-examples/<script name>``) and ``--seed``; ``pick(full,
    smoke)`` chooses a setting; ``save(fig, name)`` writes a PNG into the output folder;
    ``finish(text, summary)`` prints the one-paragraph explanation and writes ``summary.json``.
    """

    def __init__(self, script: str, description: str):
        self.name = Path(script).stem
        parser = argparse.ArgumentParser(prog=Path(script).name, description=description)
        parser.add_argument(
            "--smoke", action="store_true", help="tiny sizes: checks that the script runs"
        )
        parser.add_argument(
            "--out",
            default=str(Path("uqmcmc-examples") / self.name),
            help="folder for the figures and summary.json (default ./uqmcmc-examples/%(prog)s)",
        )
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        self.args = parser.parse_args()
        self.smoke: bool = self.args.smoke
        if self.smoke:
            # a smoke run only checks that the script runs: compile fast, unoptimised (as
            # ``python -m bench --smoke`` does); its numbers mean nothing anyway
            import jax

            jax.config.update("jax_disable_most_optimizations", True)
        self.seed: int = self.args.seed
        self.out = Path(self.args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.figures: list[Path] = []
        self._start = time.perf_counter()
        mode = "smoke" if self.smoke else "full"
        print(f"{self.name} ({mode} run, seed {self.seed}); output in {self.out}/", flush=True)

    def pick(self, full: Any, smoke: Any) -> Any:
        """``smoke`` with ``--smoke``, else ``full``."""
        return smoke if self.smoke else full

    def log(self, message: str) -> None:
        """Print a progress line with the elapsed time."""
        print(f"[{time.perf_counter() - self._start:6.1f} s] {message}", flush=True)

    def save(self, fig, name: str, dpi: int = 80) -> Path:
        """Write ``fig`` (a matplotlib Figure) as ``<out>/<name>.png``."""
        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        self.figures.append(path)
        self.log(f"wrote {path}")
        return path

    def finish(self, text: str, summary: Mapping[str, Any] | None = None) -> None:
        """Write ``summary.json`` (numbers behind the note, run time) and print the note."""
        seconds = round(time.perf_counter() - self._start, 1)
        record = {
            "example": self.name,
            "smoke": self.smoke,
            "seed": self.seed,
            "seconds": seconds,
            "cpu_count": os.cpu_count(),
            "figures": [p.name for p in self.figures],
            **dict(summary or {}),
        }
        (self.out / "summary.json").write_text(json.dumps(record, indent=2, default=_plain))
        print(f"\nFinished in {seconds:.0f} s. What this shows:\n")
        print(textwrap.fill(" ".join(text.split()), width=100))


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays (``nan`` stays a float)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


def fmt(mean: float, err: float) -> str:
    """``mean ± err`` with the error to two significant digits."""
    if not (math.isfinite(err) and err > 0):
        return f"{mean:.4g}"
    digits = max(0, 1 - int(math.floor(math.log10(err))))
    return f"{mean:.{digits}f} ± {err:.{digits}f}"


def relative_rmse(pred: Any, true: Any) -> float:
    """``sqrt(mean((pred - true)^2) / mean(true^2))``, the paper's measure of a surrogate."""
    import numpy as np

    pred, true = np.asarray(pred), np.asarray(true)
    return float(np.sqrt(np.mean((pred - true) ** 2) / np.mean(true**2)))
