"""Diagnostics: compare chains with the exact chain, epistemic error bars, exact identities,
plots and the report.

One module per concept: :mod:`~uqmcmc.diagnostics.runs` (reading runs, run statistics),
:mod:`~uqmcmc.diagnostics.estimates` (an observable with its error),
:mod:`~uqmcmc.diagnostics.hypothesis` (z-tests, Holm, the block KS test),
:mod:`~uqmcmc.diagnostics.exact_comparison`, :mod:`~uqmcmc.diagnostics.paired` (paired
references), :mod:`~uqmcmc.diagnostics.epistemic`,
:mod:`~uqmcmc.diagnostics.identities`, :mod:`~uqmcmc.diagnostics.noise`,
:mod:`~uqmcmc.diagnostics.plots` and
:mod:`~uqmcmc.diagnostics.report`.
"""

from uqmcmc._arviz import summary
from uqmcmc.diagnostics.epistemic import epistemic_spread
from uqmcmc.diagnostics.estimates import estimate
from uqmcmc.diagnostics.exact_comparison import compare_to_exact
from uqmcmc.diagnostics.hypothesis import holm, ks_test
from uqmcmc.diagnostics.identities import IDENTITIES, check_identities, stein_terms
from uqmcmc.diagnostics.noise import check_noise
from uqmcmc.diagnostics.paired import paired_differences
from uqmcmc.diagnostics.plots import (
    plot_acceptance,
    plot_calibration,
    plot_forest,
    plot_histograms,
    plot_predicted_vs_true,
    plot_rank,
    plot_trace,
)
from uqmcmc.diagnostics.rejections import rejections_by_variance
from uqmcmc.diagnostics.report import Section, failed_rows, report_sections, write_report
from uqmcmc.diagnostics.runs import run_stats

__all__ = [
    "IDENTITIES",
    "Section",
    "check_identities",
    "check_noise",
    "compare_to_exact",
    "epistemic_spread",
    "failed_rows",
    "estimate",
    "holm",
    "ks_test",
    "paired_differences",
    "plot_acceptance",
    "plot_calibration",
    "plot_forest",
    "plot_histograms",
    "plot_predicted_vs_true",
    "plot_rank",
    "plot_trace",
    "rejections_by_variance",
    "report_sections",
    "run_stats",
    "stein_terms",
    "summary",
    "write_report",
]
