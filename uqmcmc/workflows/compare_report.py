"""The compare workflow's report: the comparison tables, the figures, the report folder, and the
plain-text table the command prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uqmcmc import _arviz, diagnostics
from uqmcmc._meta import versions
from uqmcmc.diagnostics.runs import component, posterior_arrays
from uqmcmc.workflows.compare_decomposition import (
    DECOMPOSITION_OBSERVABLES,
    DECOMPOSITION_TEXT,
    bias_decomposition,
    decomposition_summary,
    findings,
    plot_decomposition,
)
from uqmcmc.workflows.compare_delayed import (
    delayed_findings,
    delayed_table,
    plot_rejections,
    rejection_findings,
    rejection_table,
)
from uqmcmc.workflows.compare_efficiency import efficiency_findings, efficiency_table
from uqmcmc.workflows.compare_shift import SHIFT_TEXT, plot_shift, shift_findings, shift_table
from uqmcmc.workflows.compare_sweep import plot_sweep, sweep_findings, sweep_table, sweep_text

EFFICIENCY_TEXT = (
    "Effective samples (bulk ESS) per 1000 network evaluations and per second for every run. A "
    "network evaluation is one network (member, mask or posterior draw) on one configuration; "
    "a MALA step in mean mode evaluates every member at the quadrature nodes, in draws mode "
    "n_draws single networks per node plus the mean at the new point for the drift. Times are "
    "wall times with compilation; a naive/penalised pair runs as one program and shares one."
)


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


def _highlights(runs: Mapping[str, Any]) -> list[str]:
    """The runs whose trace and rank plots go in the report: the control and draws+penalty."""
    return [k for k in runs if k == "exact-mala" or k.endswith("/draws/cd")]


def present_observables(names: Sequence[str], *runs: Any) -> list[str]:
    """Those of ``names`` that are a scalar posterior series (a variable or a component such as
    ``x2[0]``) of every one of ``runs``: what a histogram, trace or rank plot can show.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> run = make_idata({"energy": np.zeros((2, 5)), "x2": np.ones((2, 5, 3))})
    >>> present_observables(["energy", "rg", "x2[1]", "x2"], run)
    ['energy', 'x2[1]']
    """
    posteriors = [posterior_arrays(idata) for idata in runs]
    return [n for n in names if all(component(post, n) is not None for post in posteriors)]


def _distribution_figures(
    system: Any, runs: Mapping[str, Any], exact: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(histograms, chains)``: the report's histogram section and its trace and rank plots
    of the highlighted runs. phi^4's as always (the magnetisation; ``|M|`` and ``S/V``), else
    of the target's ``distribution_observables`` (else its headline observables) that the
    runs have; a section with nothing to show is left out."""
    highlights = [{"exact": exact, **runs}[k] for k in _highlights(runs)]
    if system.name == "phi4":
        return {"Magnetisation histograms": diagnostics.plot_histograms(runs, exact)}, {
            "Trace plots": [diagnostics.plot_trace(idata) for idata in highlights],
            "Rank plots": [diagnostics.plot_rank(idata) for idata in highlights],
        }
    wanted = getattr(system.target, "distribution_observables", None)
    wanted = list(wanted or system.headline_observables)
    names = present_observables(wanted, exact, *runs.values())
    shown = [(idata, present_observables(wanted, idata)) for idata in highlights]
    histograms = {"Histograms": [diagnostics.plot_histograms(runs, exact, var=n) for n in names]}
    chains = {
        "Trace plots": [diagnostics.plot_trace(idata, obs) for idata, obs in shown if obs],
        "Rank plots": [diagnostics.plot_rank(idata, obs) for idata, obs in shown if obs],
    }
    return {k: v for k, v in histograms.items() if v}, {k: v for k, v in chains.items() if v}


def predicted_quantity(surrogate_kind: str) -> str:
    """What the surrogates predict, in the report's words: ``grad S`` for a gradient
    surrogate, else ``S (the energy)``.

    Examples
    --------
    >>> predicted_quantity("gradient"), predicted_quantity("energy")
    ('grad S', 'S (the energy)')
    """
    return "grad S" if surrogate_kind == "gradient" else "S (the energy)"


def report_title(cfg: Any) -> str:
    """The report's title: the target and its parameters.

    Examples
    --------
    >>> from uqmcmc.workflows import CompareConfig
    >>> report_title(CompareConfig(L=4, beta=0.5, g=1.0))
    'uqmcmc compare: phi^4 L=4, beta=0.5, g=1.0'
    >>> report_title(CompareConfig(target="lj", params={"N": 4, "d": 2}))
    'uqmcmc compare: lj N=4, d=2'
    >>> report_title(CompareConfig(target="lj"))
    'uqmcmc compare: lj'
    >>> report_title(CompareConfig(target="lj", train_params={"temperature": 0.3}))
    'uqmcmc compare: lj (trained at temperature=0.3)'
    """
    system = cfg.system()
    if system.name == "phi4":
        title = f"uqmcmc compare: phi^4 L={cfg.L}, beta={cfg.beta}, g={cfg.g}"
    else:
        params = ", ".join(f"{k}={v}" for k, v in cfg.params.items())
        title = f"uqmcmc compare: {system.name} {params}".rstrip()
    if cfg.train_params:
        title += " (trained at " + ", ".join(f"{k}={v}" for k, v in cfg.train_params.items())
        title += ")"
    return title


def write_compare_report(result: Any) -> Any:
    """Compare every run of ``result`` (a :class:`~uqmcmc.workflows.compare.CompareResult`
    holding the runs, per-draw runs and test-split predictions) with the exact chain, check the
    exact identities, save each run and write the report folder ``result.out``; fills
    ``comparison``, ``epistemic`` and ``identities`` and returns ``result``.

    Examples
    --------
    Write the report of a finished run again, into another folder (a tiny run here):

    >>> import dataclasses, tempfile
    >>> from uqmcmc.workflows import CompareConfig, run_compare
    >>> cfg = CompareConfig.quick_config(
    ...     backends=("last_layer",), steps=40, warmup=20, exact_steps=200, member_steps=40,
    ...     n_train=16, n_test=4, epochs=2, identity_positions=8, out=tempfile.mkdtemp())
    >>> res = run_compare(cfg, progress=False)
    >>> again = write_compare_report(dataclasses.replace(res, out=Path(tempfile.mkdtemp())))
    >>> (again.out / "report.html").exists(), len(again.comparison) == len(res.comparison)
    (True, True)
    """
    import pandas as pd

    cfg, exact, runs, out = result.config, result.exact, result.runs, Path(result.out)
    calibration, members, predictions = result.calibration, result.members, result.predictions
    system = cfg.system()
    predicted = predicted_quantity(cfg.surrogate_kind)
    comparison = diagnostics.compare_to_exact(runs, exact)
    epistemic = diagnostics.epistemic_spread(members, exact) if members else None
    identities = diagnostics.check_identities(system, runs, num_positions=cfg.identity_positions)
    for name, idata in {"exact": exact, **runs}.items():
        _arviz.save(idata, out / f"{name.replace('/', '_')}.nc", drop=("position",))
    calib = pd.DataFrame([{"backend": k, **v} for k, v in calibration.items()])
    histograms, chains = _distribution_figures(system, runs, exact)
    label = {} if cfg.surrogate_kind == "gradient" else {"label": "S"}
    figures = {
        "Observables across runs": diagnostics.plot_forest(comparison, epistemic),
        **histograms,
        "Acceptance and penalty": diagnostics.plot_acceptance(runs),
        "Calibration of the backends": diagnostics.plot_calibration(predictions),
        f"Predicted vs true {predicted}": diagnostics.plot_predicted_vs_true(predictions, **label),
        **chains,
    }
    settings = {**dataclasses.asdict(cfg), "surrogate": cfg.surrogate_kind,
                "defaults used": cfg.system().describe_defaults(surrogates=True),
                "versions": versions()}  # fmt: skip
    sections = diagnostics.report_sections(
        settings=settings, comparison=comparison, epistemic=epistemic, identities=identities,
        figures=figures,
    )  # fmt: skip
    sections.insert(
        2,
        diagnostics.Section(
            "Backend calibration on the test split",
            f"Metrics of each backend's predictive mean and variance of {predicted} on the "
            "held-out configurations (uqmcmc.uq.calibration.metrics).",
            calib,
            csv="calibration.csv",
        ),
    )
    sections[:0] = _front_sections(result, comparison, out)
    sections.append(timings_section(result))
    # A reader starts at the summary and the controls (can this run see a bias at all?), ends
    # at the settings.
    sections.sort(key=lambda section: section.title == "Settings")
    diagnostics.write_report(out, title=report_title(cfg), sections=sections)
    result.comparison, result.epistemic, result.identities = comparison, epistemic, identities
    return result


def timings_section(result: Any) -> diagnostics.Section:
    """The "Timings" section: seconds per stage (training and chains overlap: chain sets run
    on two worker threads while the next backend trains) and the time JAX spent compiling, apart
    (summed over the threads; a rerun with a warm compilation cache skips XLA's part).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> res = SimpleNamespace(timings={"exact": 1.5, "train_ensemble": 20.0},
    ...                       compilation={"seconds": 6.25, "compiles": 31})
    >>> timings_section(res).table.to_dict("list")["seconds"]
    [1.5, 20.0, 6.25]
    """
    import pandas as pd

    rows = [{"stage": name, "seconds": t} for name, t in dict(result.timings).items()]
    compilation = dict(getattr(result, "compilation", {}) or {})
    if compilation:
        what = f"compilation ({compilation.get('compiles', 0)} XLA compilations, all stages)"
        rows.append({"stage": what, "seconds": compilation.get("seconds")})
    text = (
        "Wall seconds per stage, up to the report (its own time is in timings.json). Chain "
        "stages overlap the training of the next backend (two worker threads), so stages do "
        "not add up to the run's wall time. Compilation (tracing, lowering and XLA, summed over "
        "the threads) is shown apart; with a warm persistent compilation cache XLA's part is "
        "loaded instead of compiled."
    )
    return diagnostics.Section("Timings", text, pd.DataFrame(rows, columns=["stage", "seconds"]))


#: The control runs of a compare report: negative (exact ΔS) and positive (noisy oracle).
NEGATIVE, POSITIVE_NAIVE, POSITIVE_CD = "exact-mala", "oracle/draws/none", "oracle/draws/cd"


def _failed(rows) -> list[str]:
    return diagnostics.failed_rows(rows)["observable"].tolist()


def _third_control(rows, n_runs: int) -> str:
    """The delayed-acceptance runs as ONE control: every one is exact by construction, so their
    tests form one family (Holm over all of them), else one of five runs would fail by chance in
    about one report in five. A per-run flag that the family does not confirm is named."""
    import pandas as pd

    from uqmcmc.diagnostics.exact_comparison import holm_rows

    p_family, _ = holm_rows(rows.to_dict("records"))
    rows = rows.assign(pass_family=[None if pd.isna(p) else p > 0.05 for p in p_family],
                       p_family=p_family)  # fmt: skip
    head = (
        f"Third control (delayed acceptance, exact by construction; the {n_runs} runs' tests "
        "as one family, Holm at 5 %): "
    )
    bad = _failed_by_run(rows, "pass_family")
    if bad:
        return head + (
            f"FAILS for {'; '.join(bad)}: a delayed-acceptance chain must match the exact chain "
            "whatever the surrogate."
        )
    text = head + f"passes for all {n_runs} backends."
    single = _failed_by_run(rows, "pass")
    if single:
        p_min = float(np.nanmin(rows["p_family"]))
        text += (
            f" Alone, {'; '.join(single)} would be flagged by its own run's test (marked in the "
            f"comparison table); as one of {n_runs} runs of an exact sampler it is within "
            f"chance (smallest family p = {p_min:.2g})."
        )
    return text


def _failed_by_run(rows, column: str) -> list[str]:
    """``run (obs, obs)`` for each run with a failed ``column``."""
    out = []
    for run, group in rows.groupby("run", sort=False):
        failed = diagnostics.failed_rows(group, column)["observable"].tolist()
        if failed:
            out.append(f"{run} ({', '.join(failed)})")
    return out


def controls_summary(comparison, cfg: Any, observable: str = "sd") -> str:
    """What the controls say about the run's power, in plain sentences: the negative control
    (exact-ΔS MALA) must pass, the positive control's naive chain (a noisy oracle, heated by a
    known amount) must be flagged and its penalised chain must pass. If the naive oracle is not
    flagged, the design could not have seen a surrogate's bias of that size and the verdicts
    are withheld.

    Parameters
    ----------
    comparison
        The :func:`~uqmcmc.diagnostics.compare_to_exact` table of the runs.
    cfg
        The settings (``oracle_sigma``, ``oracle_draws``).
    observable
        The lead observable whose bias in the naive oracle chain is quoted (``sd`` for phi^4,
        the system's first headline observable otherwise).

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({
    ...     "run": ["exact-mala", "oracle/draws/none", "oracle/draws/cd"],
    ...     "observable": ["sd"] * 3, "pass": [True, False, True], "z": [0.3, 6.1, -0.4],
    ...     "bias": [0.001, 0.05, -0.002], "bias_err": [0.004] * 3, "mdb": [0.013] * 3})
    >>> cfg = type("Cfg", (), {"oracle_sigma": 1.4, "oracle_draws": 8})
    >>> text = controls_summary(table, cfg)
    >>> print(text.splitlines()[0])
    Negative control (exact-ΔS MALA): passes every test.
    >>> "naive chain is flagged on sd" in text, "NO POWER" in text
    (True, False)
    >>> table.loc[1, "pass"] = True  # the heated chain goes unseen: no power
    >>> "NO POWER" in controls_summary(table, cfg)
    True
    >>> da = pd.DataFrame({"run": ["b/delayed"] * 2 + ["c/delayed"] * 2,
    ...     "observable": ["sd", "m4"] * 2, "p_value": [0.02, 0.5, 0.3, 0.6],
    ...     "dist_p": [float("nan")] * 4, "pass": [False, True, True, True]})
    >>> print(controls_summary(pd.concat([table, da]), cfg).splitlines()[-1])
    ... # doctest: +NORMALIZE_WHITESPACE
    Third control (delayed acceptance, exact by construction; the 2 runs' tests as one family,
    Holm at 5 %): passes for all 2 backends. Alone, b/delayed (sd) would be flagged by its own
    run's test (marked in the comparison table); as one of 2 runs of an exact sampler it is
    within chance (smallest family p = 0.08).
    >>> da.loc[0, "p_value"] = 0.001  # now the family fails too
    >>> "FAILS for b/delayed (sd)" in controls_summary(pd.concat([table, da]), cfg)
    True
    >>> text = controls_summary(table.assign(observable="energy"), cfg, "energy")
    >>> "(energy: bias 0.05 ± 0.004, z = 6.1)" in text
    True
    """
    by_run = {run: rows for run, rows in comparison.groupby("run", sort=False)}
    lines = []
    if NEGATIVE in by_run:
        bad = _failed(by_run[NEGATIVE])
        lines.append(
            "Negative control (exact-ΔS MALA): "
            + (f"FAILS on {', '.join(bad)}: the reference or the step size is wrong, or the "
               "chains have not mixed; nothing below can be trusted." if bad
               else "passes every test.")
        )  # fmt: skip
    if POSITIVE_NAIVE in by_run:
        naive = by_run[POSITIVE_NAIVE]
        flagged = _failed(naive)
        what = (
            f"Positive control (ΔS plus Gaussian noise of σ = {cfg.oracle_sigma:g} estimated "
            f"from {cfg.oracle_draws} draws): "
        )
        sd = naive[naive["observable"] == observable]
        detail = (
            f" ({observable}: bias {float(sd['bias'].iloc[0]):.2g} ± "
            f"{float(sd['bias_err'].iloc[0]):.2g}, z = {float(sd['z'].iloc[0]):.1f})"
            if len(sd)
            else ""
        )
        cd_bad = _failed(by_run[POSITIVE_CD]) if POSITIVE_CD in by_run else []
        cd = (
            f"the penalised chain FAILS on {', '.join(cd_bad)} (the estimated-variance rule is "
            "approximate at this noise level)" if cd_bad else "the penalised chain passes"
        )  # fmt: skip
        if flagged:
            lines.append(
                what + f"the naive chain is flagged on {', '.join(flagged)}{detail}; {cd}. "
                "The design has the power to see a heating of this size; each verdict below "
                "states the smallest bias it could have detected."
            )
        else:
            lines.append(
                what + f"the naive chain is NOT flagged{detail}; {cd}. NO POWER: this run could "
                "not see a known heating, so its PASS verdicts are withheld — they mean 'not "
                "enough data', not 'no bias'. Run longer chains (more steps or chains)."
            )
    delayed = [run for run in by_run if run.endswith("/delayed")]
    if delayed:
        lines.append(_third_control(comparison[comparison["run"].isin(delayed)], len(delayed)))
    return "\n\n".join(lines)


def format_comparison(comparison) -> str:
    """The comparison as a plain-text table: bias z-score per run (rows) and observable
    (columns), ``*`` marking a failed test, and the run's acceptance rate.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"run": ["a", "a"], "observable": ["abs_m", "sd"],
    ...                       "z": [0.5, 6.0], "pass": [True, False],
    ...                       "acceptance_rate": [0.6, 0.6]})
    >>> print(format_comparison(table))
    bias z-scores against the exact chain (* = fails at the stated level)
    run      abs_m         sd  accept
    ---------------------------------
    a        0.50       6.00*   0.600
    """
    obs = list(dict.fromkeys(comparison.observable))
    runs = list(dict.fromkeys(comparison.run))
    width = max(len(r) for r in runs) + 2
    head = f"{'run':<{width}}" + "".join(f"{o[:10]:>11}" for o in obs) + f"{'accept':>8}"
    lines = ["bias z-scores against the exact chain (* = fails at the stated level)", head,
             "-" * len(head)]  # fmt: skip
    for run in runs:
        rows = comparison[comparison.run == run].set_index("observable")
        cells = []
        for o in obs:
            z = rows.loc[o, "z"] if o in rows.index else np.nan
            failed = o in rows.index and not bool(rows.loc[o, "pass"])
            cells.append(f"{z:>10.2f}{'*' if failed else ' '}" if np.isfinite(z) else f"{'-':>11}")
        acc = rows["acceptance_rate"].iloc[0] if "acceptance_rate" in rows else np.nan
        lines.append(f"{run:<{width}}" + "".join(cells) + f"{acc:>8.3f}")
    return "\n".join(lines)


#: The summary's text; ``{lead}`` the lead observable as described (:data:`SUMMARY_LEADS`),
#: ``{shown}`` the figure's observables (:data:`SUMMARY_NAMES`); :func:`summary_text` fills both.
SUMMARY_TEMPLATE = (
    "The table: the bias of {lead} per "
    "backend, split by paired references (frozen error: mean-mode chain vs exact; noise: naive "
    "draws vs mean; penalty residual: penalised draws vs mean; penalty on the mean: mean with "
    "vs without penalty). Each cell: difference ± error, then 'detected' or, in brackets, the "
    "smallest difference the test would have detected (80 % power, Holm over each backend's "
    "tests). The figure: every effect on {shown}, ± 2 errors, detected points filled."
)

#: How :func:`summary_text` introduces a lead observable (else by its name).
SUMMARY_LEADS = {"sd": "sd (the thermometer: its exact expectation is the temperature)"}

#: How :func:`summary_text` names an observable in the figure's list (else by its name).
SUMMARY_NAMES = {"abs_m": "|M|", "action_density": "S/V"}


def summary_text(observables: Sequence[str] = DECOMPOSITION_OBSERVABLES) -> str:
    """The summary's text for the decomposition's ``observables`` (the lead one first).

    Examples
    --------
    >>> summary_text() == SUMMARY_TEXT
    True
    >>> text = summary_text(("energy", "rg"))
    >>> text.startswith("The table: the bias of energy per backend"), "sd" in text
    (True, False)
    >>> print(text.split("The figure: ")[1])
    every effect on energy and rg, ± 2 errors, detected points filled.
    """
    names = [SUMMARY_NAMES.get(o, o) for o in observables] or ["sd"]
    shown = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    lead = observables[0] if len(observables) else "sd"
    return SUMMARY_TEMPLATE.format(lead=SUMMARY_LEADS.get(lead, lead), shown=shown)


#: The summary's text for phi^4 (:func:`summary_text` of its observables).
SUMMARY_TEXT = summary_text()


def _front_sections(result: Any, comparison, out: Path) -> list:
    """The sections a reader sees first: the summary (findings, the decomposition of the lead
    observable per backend and its figure), the controls, the noise sweep, the efficiency table
    and the full decomposition table, on the system's headline observables (phi^4: ``sd``,
    ``abs_m``, ``action_density``; the first three in the decomposition, the first two
    elsewhere). Saves the sweep runs beside the report (used by :func:`write_compare_report`,
    which puts these first).
    """
    cfg = result.config
    headline = tuple(cfg.system().headline_observables)
    decomposed, two, lead = headline[:3], headline[:2], headline[0]
    decomposition = bias_decomposition(result, decomposed)
    text = findings(decomposition, cfg.n_draws, decomposed)
    front = [
        diagnostics.Section(
            "Summary",
            "\n\n".join(t for t in (text, summary_text(decomposed)) if t),
            decomposition_summary(decomposition, lead),
            csv="summary.csv",
            figures=[plot_decomposition(decomposition, decomposed)],
        ),
        diagnostics.Section("Controls and power", controls_summary(comparison, cfg, lead)),
    ]
    shift = _shift_section(result, decomposition, lead)
    if shift is not None and cfg.train_params:  # the experiment: right after the controls
        front.append(shift)
    sweep = sweep_table(result, two)
    if len(sweep):
        oracle = comparison[comparison["run"].str.startswith("oracle/")]
        oracle = oracle[oracle["observable"] == lead].assign(sigma=cfg.oracle_sigma)
        front.append(
            diagnostics.Section(
                f"Noise sweep ({cfg.swept_backend})",
                sweep_text(cfg.swept_backend, two) + "\n\n"
                + sweep_findings(sweep, cfg.swept_backend, two),
                sweep,
                ("group", "effect", "observable", "sigma", "acceptance", "difference", "error",
                 "z", "p_holm", "verdict"),
                csv="noise_sweep.csv",
                figures=[plot_sweep(sweep, oracle, two)],
            )
        )  # fmt: skip
        for name, idata in result.sweep.items():
            _arviz.save(idata, out / f"{name.replace('/', '_')}.nc")
    efficiency = efficiency_table(result.runs, comparison, result.evaluations, two)
    front.append(
        diagnostics.Section(
            "Efficiency",
            EFFICIENCY_TEXT + "\n\n" + efficiency_findings(efficiency, tuple(cfg.backends), two),
            efficiency,
            csv="efficiency.csv",
        )
    )
    delayed = delayed_table(result.runs, comparison, two)
    if len(delayed) > 1:
        front.append(
            diagnostics.Section(
                "Delayed acceptance: exact at surrogate cost",
                delayed_text(cfg.delayed_substeps) + "\n\n" + delayed_findings(delayed, two),
                delayed,
                csv="delayed.csv",
            )
        )
    summary, per_bin = rejection_table(result.runs)
    if len(summary):
        front.append(
            diagnostics.Section(
                "Where the exact correction overturns the surrogate",
                REJECTION_TEXT + "\n\n" + rejection_findings(summary),
                summary,
                csv="rejections.csv",
                figures=[plot_rejections(per_bin)] if len(per_bin) else [],
            )
        )
    if shift is not None and not cfg.train_params:  # the negative control: further down
        front.append(shift)
    front.append(
        diagnostics.Section(
            "Bias decomposition",
            DECOMPOSITION_TEXT,
            decomposition,
            ("group", "effect", "observable", "difference", "error", "z", "p_holm", "verdict"),
            csv="decomposition.csv",
        )
    )
    return front


def _shift_section(result: Any, decomposition, lead: str):
    """The domain-shift section (:mod:`~uqmcmc.workflows.compare_shift`), or ``None`` for a
    result without scores."""
    if not result.shift:
        return None
    cfg = result.config
    table = shift_table(result.shift, decomposition, lead)
    params = cfg.target_settings() if cfg.target == "phi4" else cfg.params
    text = shift_findings(table, cfg.train_params, params, lead)
    return diagnostics.Section(
        "Out of the training domain",
        SHIFT_TEXT + "\n\n" + text,
        table,
        ("backend", "chain", "fraction", "error", "expected", "limit", "detectable", "verdict",
         "frozen error"),
        csv="domain_shift.csv",
        figures=[plot_shift(result.shift)],
    )  # fmt: skip
