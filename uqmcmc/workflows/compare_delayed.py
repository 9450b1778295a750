"""Delayed acceptance in the compare workflow: what exactness costs in exact evaluations, and
whether the rejected corrections come where the backend said it was unsure.

Every backend's delayed-acceptance chain set (``<backend>/delayed``,
:func:`~uqmcmc.workflows.compare_chains.delayed_run`) is exact by construction; its cost is
counted in exact evaluations (:func:`delayed_table`), and its corrections are binned by the
backend's predicted variance of ``Delta S-hat`` (:func:`rejection_table`,
:func:`~uqmcmc.diagnostics.rejections.rejections_by_variance`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from uqmcmc import _arviz
from uqmcmc.diagnostics.rejections import rejections_by_variance
from uqmcmc.workflows.compare_efficiency import EFFICIENCY_OBSERVABLES

DELAYED_TEXT = (
    "Delayed acceptance (Christen and Fox 2005) screens each MALA proposal with the backend's "
    "mean and corrects the survivors with the exact action, so its chain samples exp(-S) "
    "exactly whatever the surrogate: it is a third control (it must pass against the exact "
    "chain) and its cost is counted in exact evaluations (a rejected screen costs none). Exact "
    "MALA spends 2 per step (the action and the gradient at the proposal); saving = exact "
    "MALA's exact evaluations per effective sample / the run's. Its step is tuned in warm-up "
    "until 20 % of the steps move: longer than exact MALA's, since a rejected screen is free."
)


def delayed_text(substeps: int = 1) -> str:
    """The delayed-acceptance section's explanation for sub-chains of ``substeps`` steps
    (:data:`DELAYED_TEXT` for one).

    Examples
    --------
    >>> delayed_text(1) == DELAYED_TEXT
    True
    >>> "4 MALA steps" in delayed_text(4)
    True
    """
    if substeps == 1:
        return DELAYED_TEXT
    return (
        f"Delayed acceptance (Christen and Fox 2005) proposes with {substeps} MALA steps on "
        "the backend's mean energy S̄ (a sub-chain that leaves exp(-S̄) invariant) and accepts "
        "its end point with min(1, exp(-ΔS + ΔS̄)), from one exact action, so its chain samples "
        "exp(-S) exactly whatever the surrogate: it is a third control (it must pass against "
        "the exact chain) and its cost is counted in exact evaluations (at most one per step, "
        "none when the sub-chain did not move). Exact MALA spends 2 per step (the action and "
        "the gradient at the proposal); saving = exact MALA's exact evaluations per effective "
        "sample / the run's. The sub-steps use exact MALA's tuned step."
    )


REJECTION_TEXT = (
    "Each delayed-acceptance step whose screen moved is checked by the exact action; a rejected "
    "correction is an exact evaluation spent on a surrogate mistake. The corrected steps are "
    "split into five equal-count bins of the backend's predicted variance of its ΔŜ, and each "
    "bin's mean rejection probability (1 − min(1, a), not the coin) is plotted. If the "
    "predicted variance is informative, the top fifth holds more than a fifth of the rejections; "
    "its share has a block-bootstrap error, and 'detectable' is the smallest share these data "
    "could have told from a fifth (two-sided 5 %, 80 % power). uqmcmc.mcmc.local_step turns "
    "this into a step that shrinks where the variance is high (exact for any such rule)."
)


#: Exact evaluations per step of exact-ΔS MALA: the action and the gradient at the proposal.
EXACT_MALA_EVALUATIONS = 2


def delayed_table(
    runs: Mapping[str, Any], comparison, observables: Sequence[str] = EFFICIENCY_OBSERVABLES
):
    """The cost of exactness: one row per delayed-acceptance run (``<backend>/delayed``) and one
    for exact-ΔS MALA (``exact-mala``): exact evaluations per step, the correction acceptance,
    and exact evaluations per effective sample of each of ``observables`` (default
    :data:`~uqmcmc.workflows.compare_efficiency.EFFICIENCY_OBSERVABLES`), with
    ``saving_<obs>`` = exact MALA's per effective sample / the run's (above 1: cheaper).

    Parameters
    ----------
    runs
        Run name -> ArviZ data; those named ``exact-mala`` or ``<backend>/delayed`` count.
    comparison
        The :func:`~uqmcmc.diagnostics.compare_to_exact` table (``run``, ``observable``,
        ``ess_bulk``).
    observables
        Columns ``ess_<obs>``, ``exact_per_ess_<obs>`` and (with an ``exact-mala`` run)
        ``saving_<obs>`` each.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from uqmcmc._arviz import make_idata
    >>> da = make_idata({"sd": np.zeros((2, 100))}, attrs={"thin": 1},
    ...                 sample_stats={"exact_evaluations": np.full((2, 100), 0.5),
    ...                               "correction_acceptance": np.full((2, 100), 0.9)})
    >>> mala = make_idata({"sd": np.zeros((2, 100))}, attrs={"thin": 1})
    >>> comparison = pd.DataFrame({"run": ["exact-mala", "b/delayed"] * 2,
    ...                            "observable": ["sd", "sd", "abs_m", "abs_m"],
    ...                            "ess_bulk": [100.0, 50.0, 20.0, 20.0]})
    >>> t = delayed_table({"exact-mala": mala, "b/delayed": da}, comparison)
    >>> t[["run", "exact_per_step", "exact_per_ess_sd", "saving_sd", "saving_abs_m"]].values
    array([['exact-mala', 2.0, 4.0, 1.0, 1.0],
           ['b/delayed', 0.5, 2.0, 2.0, 4.0]], dtype=object)
    >>> t = delayed_table({"exact-mala": mala, "b/delayed": da},
    ...                   comparison.replace({"sd": "energy"}), ("energy",))
    >>> t["saving_energy"].tolist()
    [1.0, 2.0]
    """
    import pandas as pd

    ess = comparison.set_index(["run", "observable"])["ess_bulk"].to_dict()
    names = [n for n in runs if n == "exact-mala" or n.endswith("/delayed")]
    rows = []
    for name in names:
        idata = runs[name]
        post = _arviz.group(idata, "posterior")
        steps = math.prod(post.sizes[d] for d in ("chain", "draw")) * int(
            _arviz.attrs(idata).get("thin", 1)
        )
        row = {"run": name, "exact_per_step": float(EXACT_MALA_EVALUATIONS),
               "correction_acceptance": math.nan}  # fmt: skip
        if name != "exact-mala":
            stats = _arviz.group(idata, "sample_stats")
            row["exact_per_step"] = float(stats["exact_evaluations"].mean())
            row["correction_acceptance"] = float(stats["correction_acceptance"].mean())
        for obs in observables:
            row[f"ess_{obs}"] = e = float(ess.get((name, obs), math.nan))
            row[f"exact_per_ess_{obs}"] = row["exact_per_step"] * steps / e
        rows.append(row)
    table = pd.DataFrame(rows)
    if "exact-mala" in names:
        base = table.set_index("run").loc["exact-mala"]
        for obs in observables:
            table[f"saving_{obs}"] = base[f"exact_per_ess_{obs}"] / table[f"exact_per_ess_{obs}"]
    return table


def delayed_findings(table, observables: Sequence[str] = EFFICIENCY_OBSERVABLES) -> str:
    """One sentence per delayed-acceptance run of :func:`delayed_table`: its exact evaluations
    per step and its saving against exact MALA on the first two ``observables`` (``sd`` and
    ``abs_m`` for phi^4).

    Parameters
    ----------
    table
        A :func:`delayed_table`.
    observables
        Its observables, the lead one first (default
        :data:`~uqmcmc.workflows.compare_efficiency.EFFICIENCY_OBSERVABLES`); a saving the
        table lacks (one observable only, or no exact MALA run) is left out.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"run": ["b/delayed"], "exact_per_step": [0.5],
    ...                   "correction_acceptance": [0.9], "saving_sd": [3.0],
    ...                   "saving_abs_m": [2.5]})
    >>> print(delayed_findings(t))  # doctest: +NORMALIZE_WHITESPACE
    b: 0.5 exact evaluations per step (correction acceptance 0.9); 3x fewer exact evaluations
    per effective sample of sd than exact MALA, 2.5x fewer of abs_m.
    >>> t = t.rename(columns={"saving_sd": "saving_energy"})
    >>> print(delayed_findings(t[["run", "exact_per_step", "correction_acceptance",
    ...                           "saving_energy"]], ("energy", "rg")))
    ... # doctest: +NORMALIZE_WHITESPACE
    b: 0.5 exact evaluations per step (correction acceptance 0.9); 3x fewer exact evaluations
    per effective sample of energy than exact MALA.
    """

    def ratio(s: float) -> str:
        return f"{s:.2g}x fewer" if s >= 1 else f"{1 / s:.2g}x more"

    saved = [obs for obs in observables[:2] if f"saving_{obs}" in table]
    if "run" not in table:
        return ""
    lines = []
    for _, r in table[table["run"].str.endswith("/delayed")].iterrows():
        line = (
            f"{r['run'].split('/')[0]}: {r['exact_per_step']:.2g} exact evaluations per step "
            f"(correction acceptance {r['correction_acceptance']:.2g})"
        )
        if saved and saved[0] == observables[0]:
            lead, *rest = saved
            line += (
                f"; {ratio(r[f'saving_{lead}'])} exact evaluations per effective sample of "
                f"{lead} than exact MALA"
            )
            line += "".join(f", {ratio(r[f'saving_{obs}'])} of {obs}" for obs in rest)
        lines.append(line + ".")
    return "\n".join(lines)


#: Equal-count bins of predicted variance in :func:`rejection_table`.
REJECTION_BINS = 5


def _delayed_runs(runs: Mapping[str, Any]) -> dict[str, Any]:
    """The delayed-acceptance runs that recorded the predicted variance, by backend."""
    out = {}
    for name, idata in runs.items():
        if name.endswith("/delayed") and "delta_var" in _arviz.group(idata, "sample_stats"):
            out[name.split("/")[0]] = idata
    return out


def rejection_table(runs: Mapping[str, Any], bins: int = REJECTION_BINS):
    """Per backend: do the exact corrections reject where the backend's variance is high?

    Returns ``(summary, per_bin)``: ``summary`` one row per delayed-acceptance run (backend,
    corrected steps, expected rejections, the top bin's share of them with its standard error,
    the share an uninformative variance gives, the smallest share the data could have told from
    it, and ``informative``); ``per_bin`` the rejection probability per variance bin
    (:func:`~uqmcmc.diagnostics.rejections.rejections_by_variance`). Runs without the
    predicted variance are skipped; a run with too few corrections gets ``nan``.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> var = rng.exponential(size=(2, 500))
    >>> da = make_idata({"sd": np.zeros((2, 500))}, sample_stats={
    ...     "delta_var": var, "correction_acceptance": 1 - 0.05 * var / var.max(),
    ...     "exact_evaluations": np.ones((2, 500), int)})
    >>> summary, per_bin = rejection_table({"b/delayed": da})
    >>> summary[["backend", "corrections", "informative"]].values.tolist()
    [['b', 1000, True]]
    >>> per_bin["bin"].tolist()
    [1, 2, 3, 4, 5]
    """
    import pandas as pd

    rows, bins_rows = [], []
    for backend, idata in _delayed_runs(runs).items():
        stats = _arviz.group(idata, "sample_stats")
        moved = stats["exact_evaluations"].values > 0
        row = {"backend": backend, "corrections": int(moved.sum())}
        try:
            r = rejections_by_variance(
                stats["delta_var"].values, stats["correction_acceptance"].values, moved, bins
            )
        except ValueError:  # too few corrected steps to bin
            rows.append({**row, "rejections": math.nan, "top_share": math.nan,
                         "top_share_se": math.nan, "null_share": 1 / bins,
                         "detectable": math.nan, "informative": False})  # fmt: skip
            continue
        rows.append({**row, "rejections": r.rejections, "top_share": r.top_share,
                     "top_share_se": r.top_share_se, "null_share": r.null_share,
                     "detectable": r.detectable, "informative": r.informative})  # fmt: skip
        bins_rows.append(r.table.assign(backend=backend))
    per_bin = pd.concat(bins_rows, ignore_index=True) if bins_rows else pd.DataFrame()
    return pd.DataFrame(rows), per_bin


def rejection_findings(summary) -> str:
    """One sentence per backend of :func:`rejection_table`'s summary.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"backend": ["b", "c"], "corrections": [900, 40],
    ...     "rejections": [30.0, 0.2], "top_share": [0.45, 0.3], "top_share_se": [0.03, 0.2],
    ...     "null_share": [0.2, 0.2], "detectable": [0.28, 0.76], "informative": [True, False]})
    >>> print(rejection_findings(s))  # doctest: +NORMALIZE_WHITESPACE
    b: the top fifth of predicted variance holds 45 % (± 3 %) of the 30 expected rejections
    (20 % if the variance said nothing): rejected corrections come where the backend is unsure.
    c: the top fifth holds 30 % (± 20 %) of 0.2 expected rejections; not distinguishable from
    20 % (a share above 76 % would have been detected).
    """
    lines = []
    for _, r in summary.iterrows():
        if not math.isfinite(r["top_share"]):
            lines.append(f"{r['backend']}: {r['corrections']} corrections, too few to bin.")
            continue
        share = f"{100 * r['top_share']:.0f} % (± {100 * r['top_share_se']:.0f} %)"
        null = f"{100 * r['null_share']:.0f} %"
        if r["informative"]:
            lines.append(
                f"{r['backend']}: the top fifth of predicted variance holds {share} of the "
                f"{r['rejections']:.3g} expected rejections ({null} if the variance said "
                "nothing): rejected corrections come where the backend is unsure."
            )
        else:
            lines.append(
                f"{r['backend']}: the top fifth holds {share} of {r['rejections']:.3g} expected "
                f"rejections; not distinguishable from {null} (a share above "
                f"{100 * r['detectable']:.0f} % would have been detected)."
            )
    return "\n".join(lines)


def plot_rejections(per_bin):
    """The exact correction's mean rejection probability (± 2 errors) in each bin of the
    backend's predicted variance of ``Delta S-hat``, one line per backend (log scale).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"backend": ["b"] * 2, "bin": [1, 2], "var_low": [0.0, 0.1],
    ...     "var_high": [0.1, 1.0], "n": [10, 10], "rejection": [0.01, 0.03],
    ...     "rejection_se": [0.002, 0.005]})
    >>> plot_rejections(t).axes[0].get_xlabel()
    'predicted variance of ΔŜ (bin median, log scale)'
    """
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = fig.subplots()
    for k, (backend, rows) in enumerate(per_bin.groupby("backend", sort=False)):
        mid = np.sqrt(np.maximum(rows["var_low"], 1e-300) * rows["var_high"])
        ax.errorbar(mid, rows["rejection"], yerr=2 * rows["rejection_se"], fmt="o-",
                    color=f"C{k}", ms=4, lw=1, capsize=2, label=backend)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("predicted variance of ΔŜ (bin median, log scale)")
    ax.set_ylabel("rejection probability\nof the exact correction")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False)
    return fig
