"""The compare workflow's noise sweep: the bias of the lead observable (``sd``, the thermometer,
for phi^4; the system's first headline observable otherwise) against the noise of
``Delta S-hat``, naive and penalised, on a real surrogate (the paper's Figs. 5 and 7 as curves).

Each sweep run is a draws-mode chain of one backend with Gaussian noise added to each joint
draw (:func:`~uqmcmc.workflows.compare_chains.noise_sweep`). It is compared with the same
backend's mean-mode chain, which has the target a penalised draws chain should reach
(``exp(-S-bar)``): the difference isolates what the noise does (heating) and what the penalty
leaves of it, free of the surrogate's frozen error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from uqmcmc import _arviz, diagnostics

#: Observables of the sweep (phi^4's, the default): the thermometer and the order parameter.
#: A report passes its system's first two headline observables; the first leads.
SWEEP_OBSERVABLES = ("sd", "abs_m")

#: What :func:`sweep_text` says a naive chain's heating does to the lead observable, by name
#: (else :data:`SWEEP_SHIFT`).
SWEEP_HEATING = {"sd": "sd above zero"}

#: The heating's mark on a lead observable not in :data:`SWEEP_HEATING`.
SWEEP_SHIFT = "a shift of {obs}"

#: The noise sweep's text; ``{backend}`` the swept backend, ``{heating}`` the heating's mark on
#: the lead observable (:func:`sweep_text` fills both).
SWEEP_TEMPLATE = (
    "Draws-mode chains of {backend} with Gaussian noise added to each draw's ΔS, so that the "
    "estimate's standard deviation σ(ΔŜ) grows step by step; naive (no penalty) and with the "
    "estimated-variance Ceperley-Dewing penalty. Each is compared with {backend}'s mean-mode "
    "chain (the same target without noise), so a difference is the noise's heating or what the "
    "penalty leaves of it. A naive chain should heat like σ² ({heating}); the penalised "
    "one should stay at zero while its acceptance falls like 2Φ(−σ/2). Each cell: difference "
    "± error and 'detected' or the smallest difference the test would have detected (80 % "
    "power, Holm over each rule's tests)."
)

#: The noise sweep's text for phi^4 (lead ``sd``), ``{backend}`` the swept backend.
SWEEP_TEXT = SWEEP_TEMPLATE.replace("{heating}", SWEEP_HEATING["sd"])


def sweep_text(backend: str, observables: Sequence[str] = SWEEP_OBSERVABLES) -> str:
    """:data:`SWEEP_TEMPLATE` for the swept ``backend`` and the lead (first) of ``observables``
    (:data:`SWEEP_TEXT` for phi^4).

    Examples
    --------
    >>> sweep_text("ensemble") == SWEEP_TEXT.format(backend="ensemble")
    True
    >>> "heat like σ² (sd above zero)" in sweep_text("ensemble")
    True
    >>> "heat like σ² (a shift of energy)" in sweep_text("ensemble", ("energy", "rg"))
    True
    """
    lead = observables[0] if len(observables) else "sd"
    heating = SWEEP_HEATING.get(lead, SWEEP_SHIFT.format(obs=lead))
    return SWEEP_TEMPLATE.format(backend=backend, heating=heating)


def _run_stat(idata: Any, name: str) -> float:
    stats = _arviz.group(idata, "sample_stats")
    return float(np.mean(np.asarray(stats[name].values))) if name in stats else math.nan


def sweep_table(result: Any, observables: Sequence[str] = SWEEP_OBSERVABLES):
    """The sweep runs of a compare result against the swept backend's mean-mode chain, as a
    :func:`~uqmcmc.diagnostics.paired_differences` table (group = rule, effect = noise level)
    with the measured ``sigma`` (root mean reported variance of ``Delta S-hat``), the mean
    ``acceptance`` and the reference's acceptance ``acceptance_ref``; empty without a sweep.

    Parameters
    ----------
    result
        A compare result: ``runs``, ``sweep`` and ``config`` (``swept_backend``,
        ``noise_sweep``).
    observables
        The observables compared (default :data:`SWEEP_OBSERVABLES`); those a run lacks are
        skipped.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> def run(shift, var, acc):
    ...     shape = (4, 500)
    ...     return make_idata({"sd": shift + 0.01 * rng.normal(size=shape)},
    ...                       sample_stats={"delta_var": np.full(shape, var),
    ...                                     "acceptance_rate": np.full(shape, acc)})
    >>> runs = {"b/mean/none": run(1.0, 0.0, 0.6)}
    >>> sweep = {"b/noise1/none": run(1.02, 1.0, 0.5), "b/noise1/cd": run(1.0, 1.0, 0.4)}
    >>> cfg = type("C", (), {"swept_backend": "b", "noise_sweep": (1.0,)})
    >>> res = type("R", (), {"runs": runs, "sweep": sweep, "config": cfg})
    >>> t = sweep_table(res)
    >>> sd = t[t["observable"] == "sd"].set_index("group")
    >>> sd["detected"].to_dict(), sd["sigma"].tolist(), sd["acceptance"].tolist()
    ({'naive': True, 'penalised': False}, [1.0, 1.0], [0.5, 0.4])
    >>> sorted(set(sweep_table(res, ("sd", "rg"))["observable"]))
    ['sd']
    """
    import pandas as pd

    backend = result.config.swept_backend
    reference = result.runs.get(f"{backend}/mean/none")
    if not result.sweep or reference is None:
        return pd.DataFrame()
    pairs, extra = {}, {}
    for level in result.config.noise_sweep:
        for short, rule in (("none", "naive"), ("cd", "penalised")):
            run = result.sweep.get(f"{backend}/noise{level:g}/{short}")
            if run is not None:
                key = (rule, f"σ = {level:g}")
                pairs[key] = (run, reference)
                extra[key] = {
                    "noise_level": level,
                    "sigma": math.sqrt(_run_stat(run, "delta_var")),
                    "acceptance": _run_stat(run, "acceptance_rate"),
                    "acceptance_ref": _run_stat(reference, "acceptance_rate"),
                }
    table = diagnostics.paired_differences(pairs, tuple(observables))
    columns = pd.DataFrame(
        [extra[(g, e)] for g, e in zip(table["group"], table["effect"], strict=True)]
    )
    return pd.concat([table, columns], axis=1)


def sweep_findings(table, backend: str, observables: Sequence[str] = SWEEP_OBSERVABLES) -> str:
    """Plain sentences on the sweep's rows of the lead observable (the first of
    ``observables``, ``sd`` for phi^4): how the naive chains heat, whether the penalty holds,
    and the acceptance it costs.

    Parameters
    ----------
    table
        A :func:`sweep_table`.
    backend
        The swept backend.
    observables
        The sweep's observables, the lead one first (default :data:`SWEEP_OBSERVABLES`).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"group": ["naive", "penalised"], "effect": ["σ = 2"] * 2,
    ...     "observable": ["sd", "sd"], "difference": [0.04, 0.001], "error": [0.01, 0.01],
    ...     "detected": [True, False], "mdb": [0.03, 0.03], "sigma": [2.0, 2.0],
    ...     "acceptance": [0.6, 0.2], "acceptance_ref": [0.6, 0.6]})
    >>> print(sweep_findings(table, "b"))
    At the largest noise (σ(ΔŜ) = 2): the naive chain's sd is 0.04 ± 0.01 (detected) above
    b's mean-mode chain; the penalised chain's is 0.001 ± 0.01 (none above 0.03), at
    acceptance 0.2 against 0.6 without noise.
    >>> print(sweep_findings(table.assign(observable="energy"), "b", ("energy",)))
    At the largest noise (σ(ΔŜ) = 2): the naive chain's energy is 0.04 ± 0.01 (detected) above
    b's mean-mode chain; the penalised chain's is 0.001 ± 0.01 (none above 0.03), at
    acceptance 0.2 against 0.6 without noise.
    """
    lead = observables[0] if len(observables) else "sd"
    if table.empty:
        return ""
    sd = table[table["observable"] == lead]
    if sd.empty:
        return ""
    level = "noise_level" if "noise_level" in sd else "sigma"
    top = sd[sd[level] == sd[level].max()]

    def say(rule: str) -> str:
        row = top[top["group"] == rule]
        if row.empty:
            return "not run"
        r = row.iloc[0]
        verdict = "detected" if r["detected"] else f"none above {r['mdb']:.2g}"
        return f"{r['difference']:.2g} ± {r['error']:.2g} ({verdict})"

    sigma = float(top["sigma"].max())
    acc = top[top["group"] == "penalised"]
    cost = (
        f", at acceptance {float(acc['acceptance'].iloc[0]):.2g} against "
        f"{float(acc['acceptance_ref'].iloc[0]):.2g} without noise"
        if len(acc)
        else ""
    )
    return (
        f"At the largest noise (σ(ΔŜ) = {sigma:.2g}): the naive chain's {lead} is "
        f"{say('naive')} "
        f"above {backend}'s mean-mode chain; the penalised chain's is {say('penalised')}{cost}."
    )


def plot_sweep(table, oracle: Any = None, observables: Sequence[str] = SWEEP_OBSERVABLES):
    """Left: the difference of the lead observable (the first of ``observables``, ``sd`` for
    phi^4; ± 2 errors) against the measured ``sigma`` of
    ``Delta S-hat``, naive and penalised (filled where detected), with the positive control's
    noisy oracle (bias against the exact chain) as stars. Right: acceptance against ``sigma``
    with ``a0 * 2 Phi(-sigma / 2)`` (``a0`` the noise-free acceptance), the acceptance of a
    penalised move at ``Delta S = 0``.

    ``oracle``: rows of the comparison table for the lead observable of the oracle runs
    (``run``, ``bias``, ``bias_err``, ``sigma``), or ``None``.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"group": ["naive", "penalised"], "effect": ["σ = 1"] * 2,
    ...     "observable": ["sd", "sd"], "difference": [0.02, 0.0], "error": [0.01, 0.01],
    ...     "detected": [True, False], "sigma": [1.0, 1.0], "acceptance": [0.6, 0.4],
    ...     "acceptance_ref": [0.6, 0.6]})
    >>> len(plot_sweep(table).axes)
    2
    >>> plot_sweep(table.assign(observable="rg"), observables=("rg",)).axes[0].get_ylabel()
    'rg: difference ± 2 errors'
    """
    from matplotlib.figure import Figure
    from scipy.stats import norm

    fig = Figure(figsize=(8.4, 3.3), layout="constrained")
    left, right = fig.subplots(1, 2)
    lead = observables[0] if len(observables) else "sd"
    sd = table[table["observable"] == lead].sort_values("sigma")
    for k, (rule, marker) in enumerate((("naive", "o"), ("penalised", "s"))):
        rows = sd[sd["group"] == rule]
        if rows.empty:
            continue
        x, y = rows["sigma"].to_numpy(), rows["difference"].to_numpy()
        left.errorbar(x, y, yerr=2 * rows["error"], fmt="-", color=f"C{k}", lw=0.8)
        filled = rows["detected"].fillna(False).astype(bool).to_numpy()
        left.plot(x[filled], y[filled], marker, color=f"C{k}", label=f"{rule} (detected)")
        left.plot(x[~filled], y[~filled], marker, mfc="white", color=f"C{k}", label=rule)
        right.plot(x, rows["acceptance"], marker + "-", color=f"C{k}", label=rule)
    if oracle is not None and len(oracle):
        for k, (rule, run) in enumerate((("naive", "none"), ("penalised", "cd"))):
            row = oracle[oracle["run"].str.endswith(f"/{run}")]
            if len(row):
                r = row.iloc[0]
                left.errorbar([r["sigma"]], [r["bias"]], yerr=[2 * r["bias_err"]], fmt="*",
                              ms=10, color=f"C{k}", label=f"oracle {rule} vs exact")  # fmt: skip
    left.axhline(0.0, color="0.5", lw=0.8)
    left.set_xlabel("σ(ΔŜ) per step")
    left.set_ylabel(f"{lead}: difference ± 2 errors")
    left.legend(fontsize=7)
    if len(sd):
        grid = np.linspace(0.0, float(sd["sigma"].max()) * 1.05, 50)
        a0 = float(sd["acceptance_ref"].iloc[0])
        right.plot(grid, a0 * 2 * norm.cdf(-grid / 2), ":", color="0.4", label="a₀·2Φ(−σ/2)")
    right.set_xlabel("σ(ΔŜ) per step")
    right.set_ylabel("acceptance")
    right.set_ylim(0, 1)
    right.legend(fontsize=7)
    return fig
