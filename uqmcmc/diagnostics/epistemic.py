"""Observable-level epistemic error bars from one chain set per ensemble member / draw."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from uqmcmc import _arviz
from uqmcmc._validation import positive_int, probability
from uqmcmc.diagnostics.estimates import estimate_from, reference_values
from uqmcmc.diagnostics.exact_comparison import resolve_observables
from uqmcmc.diagnostics.runs import check_runs, is_idata, posterior_arrays

__all__ = ["epistemic_spread"]


def _spread(means: np.ndarray, mcses: np.ndarray, coverage: float) -> dict[str, float]:
    """Spread of per-draw means, split into Monte Carlo and epistemic parts, and the interval.

    The interval is the t prediction interval for one more draw's value,
    ``mean ± t_{K-1} s sqrt(1 + 1/K)`` with ``s`` the std of the ``K`` per-draw means.
    """
    k = means.size
    mean = float(means.mean())
    spread = float(means.std(ddof=1)) if k > 1 else float("nan")
    mcse_part = float(np.sqrt(np.mean(mcses**2)))
    epistemic = math.sqrt(max(0.0, spread**2 - mcse_part**2)) if k > 1 else float("nan")
    half = float(sps.t.ppf(0.5 + coverage / 2, k - 1)) * spread * math.sqrt(1 + 1 / k)
    return {
        "n_members": k,
        "mean": mean,
        "mcse": float(np.sqrt(np.sum(mcses**2)) / k),
        "spread": spread,
        "mcse_part": mcse_part,
        "epistemic_sd": epistemic,
        "lower": mean - half,
        "upper": mean + half,
    }


def epistemic_spread(
    members: Mapping[str, Sequence[Any]],
    exact=None,
    *,
    observables: Sequence[str] | None = None,
    coverage: float = 0.95,
) -> pd.DataFrame:
    """Observable-level epistemic error bars from one chain set per ensemble member / draw.

    For each run and observable, the ``K`` chain sets (each with one member or posterior draw
    held fixed) give ``K`` estimates ``o_k ± mcse_k``. Their standard deviation ``spread`` mixes
    the model's (epistemic) uncertainty with Monte Carlo noise; ``mcse_part`` (the rms of the
    ``mcse_k``) is the Monte Carlo part and ``epistemic_sd = sqrt(max(0, spread² −
    mcse_part²))`` what is left. The epistemic error bar is the t prediction interval of one more
    draw, ``mean ± t_{K−1, coverage} · spread · sqrt(1 + 1/K)`` (``lower``, ``upper``), and
    ``inside`` says whether the exact value lies within it (widened by the exact value's own
    error in quadrature).

    Parameters
    ----------
    members
        Mapping run name -> sequence of ArviZ data, one per member / posterior draw (at least 2).
    exact
        Optional exact chain or mapping of known values (as in :func:`compare_to_exact`).
    observables
        As in :func:`compare_to_exact`.
    coverage
        Nominal coverage of the interval, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        One row per (run, observable): ``run``, ``observable``, ``n_members``, ``mean`` (of the
        per-member estimates), ``mcse`` (Monte Carlo error of that mean), ``spread``,
        ``mcse_part``, ``epistemic_sd``, ``lower``, ``upper``, ``exact``, ``exact_err``, ``z``
        (exact minus mean over the interval's scale) and ``inside``.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> sets = [make_idata({"x": o + rng.normal(size=(4, 400))}) for o in (-0.5, 0.0, 0.4, 0.2)]
    >>> row = epistemic_spread({"ens": sets}, {"x": 0.0}).iloc[0]
    >>> bool(row["inside"]), bool(row["epistemic_sd"] > 3 * row["mcse_part"])
    (True, True)
    """
    coverage = probability("coverage", coverage)
    if not isinstance(members, Mapping) or is_idata(members) or not members:
        raise ValueError("members must be a non-empty mapping run name -> list of ArviZ data")
    for name, sets in members.items():
        if is_idata(sets) or not isinstance(sets, Sequence):
            raise ValueError(f"members[{name!r}] must be a sequence of ArviZ data, one per draw")
        positive_int(f"len(members[{name!r}])", len(sets), minimum=2)
        check_runs({f"{name}[{i}]": s for i, s in enumerate(sets)})
    flat = {f"{n}[{i}]": s for n, sets in members.items() for i, s in enumerate(sets)}
    names = resolve_observables(flat, exact, observables)
    ref = reference_values(exact, names) if exact is not None else {}
    rows = []
    for run_name, sets in members.items():
        data = [(posterior_arrays(s), _arviz.attrs(s)) for s in sets]
        for name in names:
            ests = [estimate_from(post, attrs, name) for post, attrs in data]
            row = _spread(
                np.array([e["mean"] for e in ests]), np.array([e["mcse"] for e in ests]), coverage
            )
            value, value_err = ref.get(name, (float("nan"), float("nan")))
            half = (row["upper"] - row["lower"]) / 2
            scale = row["spread"] * math.sqrt(1 + 1 / row["n_members"])
            z = (value - row["mean"]) / math.hypot(scale, value_err)
            rows.append(
                {
                    "run": run_name,
                    "observable": name,
                    **row,
                    "exact": value,
                    "exact_err": value_err,
                    "z": z,
                    "inside": (
                        bool(abs(value - row["mean"]) <= math.hypot(half, value_err))
                        if math.isfinite(value)
                        else None
                    ),
                }
            )
    table = pd.DataFrame(rows)
    table.attrs.update(
        coverage=coverage,
        interval="t prediction interval of one more member: mean ± t s sqrt(1 + 1/K)",
    )
    return table
