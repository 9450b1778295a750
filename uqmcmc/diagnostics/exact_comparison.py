"""Every surrogate run against the exact chain, observable by observable: bias, z-score, a
distribution test and Holm's correction per run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from uqmcmc import _arviz
from uqmcmc._validation import probability
from uqmcmc.diagnostics.estimates import estimate_from, reference_values
from uqmcmc.diagnostics.hypothesis import holm, ks_test, minimal_detectable_bias, z_and_p
from uqmcmc.diagnostics.runs import (
    available,
    check_runs,
    component,
    is_idata,
    posterior_arrays,
    run_stats,
)
from uqmcmc.targets import traits

__all__ = ["compare_to_exact", "resolve_observables", "holm_rows"]

#: R-hat and bulk ESS outside these limits are noted in the ``flags`` column.
_RHAT_LIMIT = 1.01
_ESS_LIMIT = 100.0


def resolve_observables(runs: Mapping[str, Any], exact, observables) -> list[str]:
    """The observables to compare: ``observables`` if given, else the run's target's
    ``compared_observables`` that every run and the reference have, else every scalar series
    they share.

    Examples
    --------
    >>> import numpy as np
    >>> run = _arviz.make_idata({"x": np.zeros((2, 5)), "y": np.zeros((2, 5))})
    >>> resolve_observables({"a": run}, {"x": 0.0}, None)
    ['x']
    """
    if observables is not None:
        if isinstance(observables, str):
            raise ValueError(f"observables must be a list of names, got the string {observables!r}")
        return list(observables)
    first = traits(_arviz.attrs(next(iter(runs.values()))))
    have = None
    for idata in runs.values():
        names = set(available(posterior_arrays(idata), traits(_arviz.attrs(idata)).derived))
        have = names if have is None else have & names
    have = have or set()
    if is_idata(exact):
        have &= set(available(posterior_arrays(exact), traits(_arviz.attrs(exact)).derived))
    elif exact is not None:
        have &= set(exact)
    default = [n for n in first.compared if n in have]
    if default:
        return default
    series = available(posterior_arrays(next(iter(runs.values()))), first.derived)
    return [n for n in series if n in have]


def _flags(est: Mapping[str, float]) -> str:
    flags = []
    if est["r_hat"] > _RHAT_LIMIT:
        flags.append(f"r_hat>{_RHAT_LIMIT}")
    if est["ess_bulk"] < _ESS_LIMIT:
        flags.append(f"ess_bulk<{_ESS_LIMIT:g}")
    return ";".join(flags)


def holm_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], int]:
    """Holm over the z-test and distribution-test p-values of ``rows`` (one family); each row
    gets the smaller of its two adjusted p-values. Also returns the number of tests.

    Examples
    --------
    >>> holm_rows([{"p_value": 0.01, "dist_p": float("nan")}, {"p_value": 0.2, "dist_p": 0.02}])
    ([0.03, 0.04], 3)
    """
    p = np.array([[r["p_value"], r["dist_p"]] for r in rows], dtype=float).reshape(-1, 2)
    adjusted = holm(p.ravel()).reshape(-1, 2)
    per_row = [float(np.nanmin(a)) if np.isfinite(a).any() else float("nan") for a in adjusted]
    return per_row, max(1, int(np.isfinite(p).sum()))


def _verdict(row: Mapping[str, Any], tolerance: float | None) -> str:
    if row["pass"] is None:
        return "no test"
    if not row["pass"]:
        return "biased"
    if row["flags"] or not math.isfinite(row["mdb"]):
        return "underpowered"
    if tolerance is not None and row["mdb"] > tolerance:
        return "underpowered"
    return f"consistent (would detect >= {row['mdb']:.2g})"


def compare_to_exact(
    runs: Mapping[str, Any],
    exact,
    *,
    observables: Sequence[str] | None = None,
    distributions: Sequence[str] | None = None,
    level: float = 0.05,
    power: float = 0.8,
    tolerance: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Compare every run with the exact chain, observable by observable.

    For each run and observable: the estimate with its error, the bias against the exact value
    and its z-score with the combined error ``sqrt(mcse_run² + err_exact²)``, ESS (bulk, tail),
    R-hat, and for the ``distributions`` a two-sample KS test of the whole
    distribution (:func:`ks_test`: autocorrelation accounted for by permuting blocks of chains
    between the run and the exact chain, each block as many of its own chain's autocorrelation
    times long, so that a fast- and a slow-mixing sampler can be compared). The run-level
    statistics of :func:`run_stats` (acceptance, penalty, ΔŜ variance) are repeated on each row.

    Pass/fail, multiple comparisons: the tests of one run (one z-test per observable, one KS
    test per distribution) form one family, and Holm's step-down correction keeps the chance of
    failing an unbiased run below ``level`` whatever the correlations between observables. A
    row passes when its smallest Holm-adjusted p-value (``p_holm``) exceeds ``level``; a run
    passes when all its rows do. ``p_holm_all`` and ``pass_all`` apply the same correction
    over every test of every run in the table (the family-wise level of a whole report).

    Power, not only pass/fail: ``mdb`` is the minimal detectable bias of the row's z-test, the
    smallest true bias it detects with probability ``power`` at the run's Bonferroni level
    ``level / n_tests`` (:func:`~uqmcmc.diagnostics.hypothesis.minimal_detectable_bias`). A
    passing row is "consistent" only up to that size: ``verdict`` reads ``"biased"``,
    ``"consistent (would detect >= <mdb>)"`` or ``"underpowered"`` — when the error bar itself
    is unreliable (a ``flags`` entry) or ``mdb`` exceeds the observable's ``tolerance``.

    Parameters
    ----------
    runs
        Mapping run name -> ArviZ data (``posterior`` of observables, optional ``sample_stats``).
    exact
        ArviZ data of the exact chain, or a mapping observable -> known value given as a float,
        ``(mean, err)`` or ``{"mean": ..., "err": ...}`` (e.g. a reference table; no
        distribution test then).
    observables
        Names to compare: posterior variables, components such as ``"G[1]"`` or derived
        quantities of the run's target. Default: the target's ``compared_observables``
        (:func:`uqmcmc.targets.traits`; for φ⁴ ``abs_m``, ``m2``, ``m4``, ``action_density``,
        ``sd``, ``chi_abs``, ``binder``) present in every run and the reference, else every
        scalar series they share.
    distributions
        Observables that also get the distribution test (when both sides are chains). Default:
        the target's ``distribution_observables`` (φ⁴: ``abs_m``, ``action_density``).
    level
        Family-wise significance level per run, strictly between 0 and 1.
    power
        Detection probability that defines ``mdb``, strictly between 0 and 1.
    tolerance
        Optional observable -> the smallest bias that matters: a passing row whose ``mdb`` is
        larger is ``"underpowered"``.

    Returns
    -------
    pandas.DataFrame
        One row per (run, observable): ``run``, ``observable``, ``method`` (``mcse`` or
        ``jackknife``), ``mean``, ``mcse``, ``sd``, ``ess_bulk``, ``ess_tail``, ``r_hat``,
        ``exact``, ``exact_err``, ``bias``, ``bias_err``, ``z``, ``p_value``, ``dist_stat``
        (KS ``D``), ``dist_p``, ``p_holm``, ``pass``, ``flags`` (``r_hat>1.01``,
        ``ess_bulk<100``), ``mdb``, ``verdict``, ``p_holm_all``, ``pass_all``, then the
        :func:`run_stats` columns. ``df.attrs`` records the level, the power and the methods.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(1)
    >>> runs = {"good": make_idata({"x": rng.normal(size=(4, 1000))}),
    ...         "bad": make_idata({"x": 0.3 + rng.normal(size=(4, 1000))})}
    >>> exact = make_idata({"x": rng.normal(size=(4, 1000))})
    >>> table = compare_to_exact(runs, exact, distributions=["x"])
    >>> table.set_index("run")["pass"].to_dict()
    {'good': True, 'bad': False}
    >>> table.set_index("run")["verdict"].to_dict()
    {'good': 'consistent (would detect >= 0.068)', 'bad': 'biased'}
    """
    check_runs(runs)
    level = probability("level", level)
    power = probability("power", power)
    tolerance = dict(tolerance or {})
    names = resolve_observables(runs, exact, observables)
    if not names:
        raise ValueError("observables: no observable is shared by the runs and the reference")
    if distributions is None:
        distributions = traits(_arviz.attrs(next(iter(runs.values())))).distributions
    ref = reference_values(exact, names)
    exact_post = posterior_arrays(exact) if is_idata(exact) else None

    rows = []
    for run_name, idata in runs.items():
        post, attrs = posterior_arrays(idata), _arviz.attrs(idata)
        rs = run_stats(idata)
        run_rows = []
        for name in names:
            est = estimate_from(post, attrs, name)
            value, value_err = ref.get(name, (float("nan"), float("nan")))
            bias = est["mean"] - value
            bias_err = math.hypot(est["mcse"], value_err)
            z, p = z_and_p(bias, bias_err)
            d = dp = float("nan")
            x = component(post, name)
            y = component(exact_post, name) if exact_post is not None else None
            if name in distributions and x is not None and y is not None:
                d, dp = ks_test(x, y)
            run_rows.append(
                {
                    "run": run_name,
                    "observable": name,
                    "method": est["method"],
                    "mean": est["mean"],
                    "mcse": est["mcse"],
                    "sd": est["sd"],
                    "ess_bulk": est["ess_bulk"],
                    "ess_tail": est["ess_tail"],
                    "r_hat": est["r_hat"],
                    "exact": value,
                    "exact_err": value_err,
                    "bias": bias,
                    "bias_err": bias_err,
                    "z": z,
                    "p_value": p,
                    "dist_stat": d,
                    "dist_p": dp,
                    "flags": _flags(est),
                    **rs,
                }
            )
        p_holm, n_tests = holm_rows(run_rows)
        for r, p in zip(run_rows, p_holm, strict=True):
            r["p_holm"] = p
            r["pass"] = bool(r["p_holm"] > level) if math.isfinite(r["p_holm"]) else None
            r["mdb"] = float(minimal_detectable_bias(r["bias_err"], level, n_tests, power))
            r["verdict"] = _verdict(r, tolerance.get(r["observable"]))
        rows.extend(run_rows)

    for r, p in zip(rows, holm_rows(rows)[0], strict=True):
        r["p_holm_all"] = p
        r["pass_all"] = bool(r["p_holm_all"] > level) if math.isfinite(r["p_holm_all"]) else None
    table = pd.DataFrame(rows)
    first = ["run", "observable", "method", "mean", "mcse", "sd", "ess_bulk", "ess_tail", "r_hat"]
    first += ["exact", "exact_err", "bias", "bias_err", "z", "p_value", "dist_stat", "dist_p"]
    first += ["p_holm", "pass", "flags", "mdb", "verdict", "p_holm_all", "pass_all"]
    table = table[first + [c for c in table.columns if c not in first]]
    table.attrs.update(
        level=level,
        power=power,
        multiple_comparisons=(
            "Holm step-down over all tests of one run (p_holm, pass) and over every test of "
            "the table (p_holm_all, pass_all)"
        ),
        mdb=(
            "minimal detectable bias: the bias the z-test detects with the stated power at the "
            "run's Bonferroni level"
        ),
        error="ArviZ ESS-aware MCSE; block jackknife for derived quantities",
        distribution_test=(
            "two-sample KS, p by permuting blocks that span the same number (at most 20) of "
            "each sample's own autocorrelation times"
        ),
    )
    return table
