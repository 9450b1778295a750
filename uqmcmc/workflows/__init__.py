"""Workflows as library functions (the ``uqmcmc`` command and scripts call these): what they need
from a target, with defaults (:mod:`~uqmcmc.workflows.system`), the exact
reference chains (:mod:`~uqmcmc.workflows.exact`), training sets drawn from them
(:mod:`~uqmcmc.workflows.training_data`) and the comparison of every UQ backend with them
(:mod:`~uqmcmc.workflows.compare` and its settings, chains and report modules)."""

from uqmcmc.workflows.active_learning import (
    ActiveLearningConfig,
    ActiveLearningResult,
    run_active_learning,
)
from uqmcmc.workflows.compare import CompareResult, run_compare
from uqmcmc.workflows.compare_chains import PENALTY, ChainPlan, per_draw_algorithm
from uqmcmc.workflows.compare_config import BACKENDS, CompareConfig
from uqmcmc.workflows.compare_report import format_comparison, write_compare_report
from uqmcmc.workflows.exact import (
    ExactConfig,
    ExactResult,
    describe_exact,
    exact_table,
    format_table,
    run_exact,
)
from uqmcmc.workflows.system import System
from uqmcmc.workflows.training_data import make_dataset

__all__ = [
    "ActiveLearningConfig",
    "ActiveLearningResult",
    "BACKENDS",
    "PENALTY",
    "System",
    "ChainPlan",
    "CompareConfig",
    "CompareResult",
    "ExactConfig",
    "ExactResult",
    "describe_exact",
    "exact_table",
    "format_comparison",
    "format_table",
    "make_dataset",
    "per_draw_algorithm",
    "run_active_learning",
    "run_compare",
    "run_exact",
    "write_compare_report",
]
