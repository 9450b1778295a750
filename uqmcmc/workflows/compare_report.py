"""The compare workflow's report: the comparison tables, the figures, the report folder, and the
plain-text table the command prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from uqmcmc import _arviz, diagnostics
from uqmcmc._meta import versions
from uqmcmc.targets import Phi4


def _highlights(runs: Mapping[str, Any]) -> list[str]:
    """The runs whose trace and rank plots go in the report: the control and draws+penalty."""
    return [k for k in runs if k == "exact-mala" or k.endswith("/draws/cd")]


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
    target = Phi4(cfg.L, cfg.beta, cfg.g)
    comparison = diagnostics.compare_to_exact(runs, exact)
    epistemic = diagnostics.epistemic_spread(members, exact) if members else None
    identities = diagnostics.check_identities(target, runs, num_positions=cfg.identity_positions)
    for name, idata in {"exact": exact, **runs}.items():
        _arviz.save(idata, out / f"{name.replace('/', '_')}.nc", drop=("position",))
    calib = pd.DataFrame([{"backend": k, **v} for k, v in calibration.items()])
    everything = {"exact": exact, **runs}
    figures = {
        "Observables across runs": diagnostics.plot_forest(comparison, epistemic),
        "Magnetisation histograms": diagnostics.plot_histograms(runs, exact),
        "Acceptance and penalty": diagnostics.plot_acceptance(runs),
        "Calibration of the backends": diagnostics.plot_calibration(predictions),
        "Predicted vs true grad S": diagnostics.plot_predicted_vs_true(predictions),
        "Trace plots": [diagnostics.plot_trace(everything[k]) for k in _highlights(runs)],
        "Rank plots": [diagnostics.plot_rank(everything[k]) for k in _highlights(runs)],
    }
    settings = {**dataclasses.asdict(cfg), "versions": versions()}
    sections = diagnostics.report_sections(
        settings=settings, comparison=comparison, epistemic=epistemic, identities=identities,
        figures=figures,
    )  # fmt: skip
    sections.insert(
        2,
        diagnostics.Section(
            "Backend calibration on the test split",
            "Metrics of each backend's predictive mean and variance of grad S on the held-out "
            "configurations (uqmcmc.uq.calibration.metrics).",
            calib,
            csv="calibration.csv",
        ),
    )
    title = f"uqmcmc compare: phi^4 L={cfg.L}, beta={cfg.beta}, g={cfg.g}"
    diagnostics.write_report(out, title=title, sections=sections)
    result.comparison, result.epistemic, result.identities = comparison, epistemic, identities
    return result


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
