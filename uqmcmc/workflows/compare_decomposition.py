"""The compare workflow's bias decomposition: each backend's bias split by paired references
(frozen error, noise, penalty residual, penalty on the mean), as a table, a figure, a one-row-
per-backend summary and plain sentences of findings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from uqmcmc import diagnostics
from uqmcmc.workflows.compare_chains import EXACT_COUPLED

#: Each effect of the bias decomposition: (name, run, reference), ``{b}`` the backend. The
#: frozen error's reference is the coupled exact-ΔS MALA chain (the checkerboard chain
#: ``exact`` when a result has none).
EFFECTS = (
    ("frozen error", "{b}/mean/none", EXACT_COUPLED),
    ("noise", "{b}/draws/none", "{b}/mean/none"),
    ("penalty residual", "{b}/draws/cd", "{b}/mean/none"),
    ("penalty on the mean", "{b}/mean/cd", "{b}/mean/none"),
)

#: Observables of the decomposition (phi^4's, the default): the thermometer, the order
#: parameter, the action. A report passes its system's
#: :attr:`~uqmcmc.workflows.System.headline_observables` instead; the first plays the part of
#: ``sd`` (the lead observable), the second that of ``abs_m``.
DECOMPOSITION_OBSERVABLES = ("sd", "abs_m", "action_density")

DECOMPOSITION_TEXT = (
    "Each backend's bias split by paired references. Frozen error: the mean-mode chain (the "
    "surrogate's predictive mean, no noise) against the exact-ΔS MALA chain. Noise: the naive "
    "draws-mode chain against the mean-mode chain (the heating by the draws' noise). Penalty "
    "residual: the penalised draws-mode chain against the mean-mode chain (both target the "
    "surrogate mean, so this is what the penalty fails to remove). Penalty on the mean: the "
    "mean-mode chain with the penalty against it without (a deterministic estimate has no "
    "noise to correct; the penalty cools the chain). The chains of every pair are coupled "
    "(the same random numbers and starts; column paired), so the error of a difference is "
    "that of the draw-by-draw difference, far below that of two independent runs. Each cell: "
    "difference ± error, and "
    "either 'detected' or the smallest difference the test would have detected (80 % power, "
    "Holm over each backend's tests)."
)


def bias_decomposition(result: Any, observables: Sequence[str] = DECOMPOSITION_OBSERVABLES):
    """The :data:`EFFECTS` of every backend of a compare result as a
    :func:`~uqmcmc.diagnostics.paired_differences` table (group = backend).

    Parameters
    ----------
    result
        A compare result: ``runs``, ``exact`` and ``config.backends``.
    observables
        The observables compared (default :data:`DECOMPOSITION_OBSERVABLES`); those a pair
        lacks are skipped.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> run = lambda shift: make_idata({"sd": shift + 0.01 * rng.normal(size=(4, 500))})
    >>> runs = {"b/mean/none": run(1.05), "b/draws/none": run(1.08), "b/draws/cd": run(1.05),
    ...         "b/mean/cd": run(1.0)}
    >>> res = type("R", (), {"runs": runs, "exact": run(1.0),
    ...                      "config": type("C", (), {"backends": ("b",)})})
    >>> table = bias_decomposition(res).set_index("effect")
    >>> table["detected"].to_dict()
    {'frozen error': True, 'noise': True, 'penalty residual': False, 'penalty on the mean': True}

    Another system's observables (here a made-up ``energy``):

    >>> erun = lambda shift: make_idata({"energy": shift + 0.01 * rng.normal(size=(4, 500))})
    >>> res.runs, res.exact = {k: erun(1.05) for k in runs}, erun(1.0)
    >>> sorted(set(bias_decomposition(res, ("energy", "rg"))["observable"]))
    ['energy']
    """
    pairs = {}
    for backend in result.config.backends:
        for effect, run, reference in EFFECTS:
            run, reference = run.format(b=backend), reference.format(b=backend)
            runs = {"exact": result.exact, **result.runs}
            if reference == EXACT_COUPLED and reference not in runs:
                reference = "exact"
            if run in runs and reference in runs:
                pairs[(backend, effect)] = (runs[run], runs[reference])
    return diagnostics.paired_differences(pairs, tuple(observables))


def plot_decomposition(table, observables: Sequence[str] = DECOMPOSITION_OBSERVABLES):
    """One panel per observable: each effect's difference ± 2 errors per backend, the
    detected ones filled.

    Parameters
    ----------
    table
        A :func:`bias_decomposition` table.
    observables
        The decomposition's observables: an empty ``table`` gets one empty panel of the first.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"group": ["b", "b"], "effect": ["frozen error", "noise"],
    ...     "observable": ["sd", "sd"], "difference": [0.05, 0.0], "error": [0.01, 0.01],
    ...     "detected": [True, False]})
    >>> len(plot_decomposition(table).axes)
    1
    >>> plot_decomposition(table.iloc[:0], ("energy", "rg")).axes[0].get_title()
    'energy'
    """
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(table["observable"])) or [*observables[:1]] or ["sd"]
    effects = [e for e, _, _ in EFFECTS if e in set(table["effect"])]
    groups = list(dict.fromkeys(table["group"]))
    fig = Figure(figsize=(3.6 * len(names), 3.2), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        rows = table[table["observable"] == name]
        for k, group in enumerate(groups):
            sub = rows[rows["group"] == group].set_index("effect").reindex(effects)
            x = np.arange(len(effects)) + (k - (len(groups) - 1) / 2) * 0.8 / max(len(groups), 1)
            ax.errorbar(x, sub["difference"], yerr=2 * sub["error"], fmt="none", ecolor=f"C{k}")
            filled = sub["detected"].fillna(False).astype(bool).to_numpy()
            ax.plot(x[filled], sub["difference"][filled], "o", color=f"C{k}", label=group)
            ax.plot(x[~filled], sub["difference"][~filled], "o", mfc="white", color=f"C{k}")
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_xticks(range(len(effects)), effects, rotation=30, ha="right", fontsize=8)
        ax.set_title(name)
    axes[0].set_ylabel("difference ± 2 errors")
    if groups:
        axes[-1].legend(fontsize=7)
    return fig


def decomposition_summary(table, observable: str = "sd"):
    """The decomposition of one observable as one row per backend and one column per effect,
    each cell ``difference ± error`` and its verdict: the report's first table. Two coupled
    chains that agree in every draw (a penalty too small to change any decision) read
    ``0 (identical draws)``.

    Parameters
    ----------
    table
        A :func:`bias_decomposition` table.
    observable
        The observable summarised: the lead one (the first headline observable), ``sd`` for
        phi^4.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"group": ["b"] * 3,
    ...     "effect": ["frozen error", "noise", "penalty on the mean"], "observable": ["sd"] * 3,
    ...     "difference": [0.05, 0.001, 0.0], "error": [0.01, 0.01, 0.0],
    ...     "detected": [True, False, False], "mdb": [0.04, 0.04, 0.0]})
    >>> decomposition_summary(table).to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
    [{'backend': 'b', 'frozen error': '0.05 ± 0.01 detected', 'noise': '0.001 ± 0.01 (< 0.04)',
      'penalty on the mean': '0 (identical draws)'}]
    >>> decomposition_summary(table.assign(observable="energy"), "energy")["noise"].tolist()
    ['0.001 ± 0.01 (< 0.04)']
    """
    import pandas as pd

    rows = table[table["observable"] == observable]
    effects = [e for e, _, _ in EFFECTS if e in set(rows["effect"])]
    out = []
    for backend, sub in rows.groupby("group", sort=False):
        cells = {"backend": backend}
        for _, r in sub.set_index("effect").reindex(effects).iterrows():
            if pd.isna(r["difference"]):
                continue
            if r["difference"] == 0 and r["error"] == 0:
                cells[r.name] = "0 (identical draws)"
                continue
            verdict = "detected" if r["detected"] else f"(< {r['mdb']:.2g})"
            cells[r.name] = f"{r['difference']:.2g} ± {r['error']:.2g} {verdict}"
        out.append(cells)
    return pd.DataFrame(out, columns=["backend", *effects])


#: What :func:`findings` says of the frozen error (if detected, if not).
_FROZEN = (
    "the mean's frozen error shifts {obs} by {size} (detected)",
    "the mean's frozen error on {obs} is below {mdb} ({size}, not detected)",
)

#: The sentences of :func:`findings`: (effect, observable, (if detected, if not)); the
#: observable is its position among the observables :func:`findings` is given (0: the lead one,
#: ``sd`` for phi^4; 1: the second, ``abs_m``); a rule whose position is not given is skipped.
FINDINGS = (
    ("frozen error", 0, _FROZEN),
    ("noise", 0, ("the heating from {n} draws per step is {size} (detected)",
                  "the heating from {n} draws per step is below {mdb} ({size}, not "
                  "detected)")),
    ("penalty residual", 0, ("the penalty leaves a residual of {size} (detected)",
                             "the penalty leaves no residual above {mdb} ({size})")),
    ("frozen error", 1, _FROZEN),
)  # fmt: skip


def findings(table, n_draws: int, observables: Sequence[str] = DECOMPOSITION_OBSERVABLES) -> str:
    """A few plain sentences per backend from the decomposition of the first two
    ``observables`` (``sd`` and ``abs_m`` for phi^4): the frozen error, the heating by the
    draws' noise, what the penalty leaves (on the first), the frozen error (on the second),
    each with its number and either "detected" or the smallest effect the design could have
    detected.

    Parameters
    ----------
    table
        A :func:`bias_decomposition` table.
    n_draws
        Draws per step of the draws-mode chains.
    observables
        The decomposition's observables, the lead one first (default
        :data:`DECOMPOSITION_OBSERVABLES`); with only one, the second's sentence is left out.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"group": ["b"] * 3,
    ...     "effect": ["frozen error", "noise", "penalty residual"], "observable": ["sd"] * 3,
    ...     "difference": [0.02, 0.001, 0.0], "error": [0.004, 0.003, 0.003],
    ...     "detected": [True, False, False], "mdb": [0.011, 0.009, 0.009]})
    >>> print(findings(table, 8))
    b: the mean's frozen error shifts sd by 0.02 ± 0.004 (detected); the heating from 8 draws
    per step is below 0.009 (0.001 ± 0.003, not detected); the penalty leaves no residual
    above 0.009 (0 ± 0.003).

    Another system's lead observable (the sentences of ``sd`` now speak of ``energy``):

    >>> print(findings(table.assign(observable="energy"), 8, ("energy", "rg")))
    b: the mean's frozen error shifts energy by 0.02 ± 0.004 (detected); the heating from 8
    draws per step is below 0.009 (0.001 ± 0.003, not detected); the penalty leaves no residual
    above 0.009 (0 ± 0.003).
    """
    lines = []
    for backend, sub in table.groupby("group", sort=False):
        parts = []
        for effect, k, (found, bound) in FINDINGS:
            if k >= len(observables):
                continue
            obs = observables[k]
            rows = sub[(sub["observable"] == obs) & (sub["effect"] == effect)]
            if rows.empty:
                continue
            r = rows.iloc[0]
            words = {"obs": obs, "n": n_draws, "mdb": f"{r['mdb']:.2g}",
                     "size": f"{r['difference']:.2g} ± {r['error']:.2g}"}  # fmt: skip
            parts.append((found if r["detected"] else bound).format(**words))
        if parts:
            lines.append(f"{backend}: " + "; ".join(parts) + ".")
    return "\n\n".join(lines)
