"""Diagnostics: compare chains with the exact chain, epistemic error bars, exact identities,
plots and the report."""

from uqmcmc._arviz import summary
from uqmcmc.diagnostics.compare import (
    DEFAULT_OBSERVABLES,
    DERIVED,
    DISTRIBUTION_OBSERVABLES,
    compare_to_exact,
    epistemic_spread,
    estimate,
    ks_test,
    run_stats,
)
from uqmcmc.diagnostics.identities import IDENTITIES, check_identities, stein_terms
from uqmcmc.diagnostics.plots import (
    plot_acceptance,
    plot_calibration,
    plot_forest,
    plot_histograms,
    plot_predicted_vs_true,
    plot_rank,
    plot_trace,
)
from uqmcmc.diagnostics.report import Section, report_sections, write_report

__all__ = [
    "DEFAULT_OBSERVABLES",
    "DERIVED",
    "DISTRIBUTION_OBSERVABLES",
    "IDENTITIES",
    "Section",
    "check_identities",
    "compare_to_exact",
    "epistemic_spread",
    "estimate",
    "ks_test",
    "plot_acceptance",
    "plot_calibration",
    "plot_forest",
    "plot_histograms",
    "plot_predicted_vs_true",
    "plot_rank",
    "plot_trace",
    "report_sections",
    "run_stats",
    "stein_terms",
    "summary",
    "write_report",
]
