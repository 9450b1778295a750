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
from uqmcmc.workflows.compare_controls import controls_summary
from uqmcmc.workflows.compare_decomposition import (
    DECOMPOSITION_OBSERVABLES,
    DECOMPOSITION_TEXT,
    bias_decomposition,
    decomposition_summary,
    findings,
    plot_decomposition,
)
from uqmcmc.workflows.compare_delayed import (
    REJECTION_TEXT,
    delayed_findings,
    delayed_table,
    delayed_text,
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
