"""Write ``arviz<major>.nc``: a small run saved by the installed ArviZ line, for the test that
reads every line's file back under every other line (tests/test_arviz.py).

Run once per ArviZ line from the project root: ``python tests/data/make_arviz_files.py``.
The draws are made by numpy's PCG64 with a fixed seed (stable across numpy versions); the
statistics the writer computed are stored in the attrs so the reader can compare with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uqmcmc import _arviz


def draws() -> tuple[dict, dict]:
    """The fixed run: AR(1) chains with heavy-ish tails, 4 chains x 400 draws."""
    rng = np.random.default_rng(20261201)
    chains, n = 4, 400
    noise = rng.standard_t(5, size=(chains, n))
    x = np.empty((chains, n))
    x[:, 0] = noise[:, 0]
    for t in range(1, n):
        x[:, t] = 0.8 * x[:, t - 1] + noise[:, t]
    posterior = {"abs_m": np.abs(x), "G": rng.normal(size=(chains, n, 3))}
    stats = {
        "acceptance_rate": rng.uniform(size=(chains, n)),
        "is_accepted": rng.uniform(size=(chains, n)) < 0.5,
    }
    return posterior, stats


def main() -> None:
    posterior, stats = draws()
    expected = _arviz.summarize(posterior["abs_m"])
    attrs = {"L": 4, "beta": 0.5, "backend": "exact", "expected": json.dumps(expected)}
    idata = _arviz.make_idata(posterior, stats, dims={"G": ["r"]}, attrs=attrs)
    out = Path(__file__).resolve().parent / f"arviz{_arviz.ARVIZ_MAJOR}.nc"
    _arviz.save(idata, out)
    print(f"wrote {out.name} with ArviZ {_arviz.az.__version__}: {expected}")


if __name__ == "__main__":
    main()
