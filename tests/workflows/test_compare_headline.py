"""The compare report's sentences and tables follow the system's headline observables.

phi^4 leads with ``sd`` and ``abs_m`` (the defaults, whose output must not change); another
system with its own (LJ: ``energy``, ``rg``) or with the single Stein term ``sd``. Fast: fake
tables and tiny fake runs, no sampling.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from uqmcmc._arviz import make_idata
from uqmcmc.workflows import CompareConfig
from uqmcmc.workflows.compare_controls import controls_summary
from uqmcmc.workflows.compare_decomposition import (
    bias_decomposition,
    decomposition_summary,
    findings,
    plot_decomposition,
)
from uqmcmc.workflows.compare_delayed import delayed_findings, delayed_table
from uqmcmc.workflows.compare_efficiency import efficiency_findings, efficiency_table
from uqmcmc.workflows.compare_report import (
    SUMMARY_TEXT,
    _distribution_figures,
    present_observables,
    report_title,
    summary_text,
)
from uqmcmc.workflows.compare_sweep import (
    SWEEP_TEXT,
    plot_sweep,
    sweep_findings,
    sweep_table,
    sweep_text,
)

LJ = ("energy", "rg")
PHI4_NAMES = re.compile(r"\b(sd|abs_m|action_density)\b")


def _no_phi4(text: str) -> None:
    assert not PHI4_NAMES.search(text), text


def _decomposition(first: str = "sd", second: str = "abs_m") -> pd.DataFrame:
    """Two backends; three effects on the lead observable, the frozen error on the second."""
    return pd.DataFrame({
        "group": ["b"] * 4 + ["c"] * 4,
        "effect": ["frozen error", "noise", "penalty residual", "frozen error"] * 2,
        "observable": [first, first, first, second] * 2,
        "difference": [0.02, 0.001, 0.0, 0.03, 0.0, 0.05, 0.02, 0.001],
        "error": [0.004, 0.003, 0.003, 0.01, 0.0, 0.01, 0.005, 0.01],
        "detected": [True, False, False, True, False, True, True, False],
        "mdb": [0.011, 0.009, 0.009, 0.02, 0.0, 0.03, 0.01, 0.03],
    })  # fmt: skip


def _sweep(first: str = "sd", second: str = "abs_m") -> pd.DataFrame:
    return pd.DataFrame({
        "group": ["naive", "penalised", "naive", "penalised"],
        "effect": ["σ = 2"] * 2 + ["σ = 1"] * 2,
        "observable": [first, first, second, second],
        "difference": [0.04, 0.001, 0.2, 0.0], "error": [0.01, 0.01, 0.1, 0.1],
        "detected": [True, False, False, False], "mdb": [0.03, 0.03, 0.3, 0.3],
        "sigma": [2.0, 2.0, 1.0, 1.0], "noise_level": [2.0, 2.0, 1.0, 1.0],
        "acceptance": [0.6, 0.2, 0.5, 0.3], "acceptance_ref": [0.6] * 4,
    })  # fmt: skip


def _efficiency(first: str = "sd", second: str = "abs_m") -> pd.DataFrame:
    return pd.DataFrame({
        "run": ["b/mean/none", "b/draws/cd", "c/mean/none", "c/draws/cd"],
        "evals_per_step": [30, 34, 3, 9],
        f"ess_{first}_per_1k_evals": [0.25, 0.5, 3.0, 1.0],
        f"ess_{second}_per_1k_evals": [1, 2, 3, 4],
    })  # fmt: skip


def _delayed_runs(names=("sd", "abs_m")):
    shape = (2, 100)
    da = make_idata({n: np.zeros(shape) for n in names}, attrs={"thin": 1},
                    sample_stats={"exact_evaluations": np.full(shape, 0.5),
                                  "correction_acceptance": np.full(shape, 0.9)})  # fmt: skip
    mala = make_idata({n: np.zeros(shape) for n in names}, attrs={"thin": 1})
    return {"exact-mala": mala, "b/delayed": da}


def _delayed_comparison(first: str = "sd", second: str = "abs_m") -> pd.DataFrame:
    return pd.DataFrame({"run": ["exact-mala", "b/delayed"] * 2,
                         "observable": [first, first, second, second],
                         "ess_bulk": [100.0, 50.0, 20.0, 20.0]})  # fmt: skip


def _controls(first: str = "sd", second: str = "abs_m") -> pd.DataFrame:
    return pd.DataFrame({
        "run": ["exact-mala", "oracle/draws/none", "oracle/draws/cd"] * 2,
        "observable": [first] * 3 + [second] * 3,
        "pass": [True, False, True, False, False, False], "z": [0.3, 6.1, -0.4, 3, 4, 5],
        "bias": [0.001, 0.05, -0.002, 1, 2, 3], "bias_err": [0.004] * 6, "mdb": [0.013] * 6,
    })  # fmt: skip


CFG = SimpleNamespace(oracle_sigma=1.4, oracle_draws=8)


# -- phi^4: the defaults give the report's old sentences --------------------------------------


def test_phi4_defaults_unchanged():
    assert findings(_decomposition(), 8) == (
        "b: the mean's frozen error shifts sd by 0.02 ± 0.004 (detected); the heating from 8 "
        "draws per step is below 0.009 (0.001 ± 0.003, not detected); the penalty leaves no "
        "residual above 0.009 (0 ± 0.003); the mean's frozen error shifts abs_m by 0.03 ± 0.01 "
        "(detected).\n\nc: the mean's frozen error on sd is below 0 (0 ± 0, not detected); the "
        "heating from 8 draws per step is 0.05 ± 0.01 (detected); the penalty leaves a "
        "residual of 0.02 ± 0.005 (detected); the mean's frozen error on abs_m is below 0.03 "
        "(0.001 ± 0.01, not detected)."
    )
    assert sweep_findings(_sweep(), "b") == (
        "At the largest noise (σ(ΔŜ) = 2): the naive chain's sd is 0.04 ± 0.01 (detected) "
        "above b's mean-mode chain; the penalised chain's is 0.001 ± 0.01 (none above 0.03), "
        "at acceptance 0.2 against 0.6 without noise."
    )
    assert efficiency_findings(_efficiency(), ("b", "c", "d")) == (
        "b: 0.5 effective samples of sd per 1000 network evaluations with draws + penalty (34 "
        "per step) against 0.25 with the mean (30 per step): 2x.\n\nc: 1 effective samples of "
        "sd per 1000 network evaluations with draws + penalty (9 per step) against 3 with the "
        "mean (3 per step): 0.33x."
    )
    table = delayed_table(_delayed_runs(), _delayed_comparison())
    assert list(table.columns) == [
        "run", "exact_per_step", "correction_acceptance", "ess_sd", "exact_per_ess_sd",
        "ess_abs_m", "exact_per_ess_abs_m", "saving_sd", "saving_abs_m",
    ]  # fmt: skip
    assert delayed_findings(table) == (
        "b: 0.5 exact evaluations per step (correction acceptance 0.9); 2x fewer exact "
        "evaluations per effective sample of sd than exact MALA, 4x fewer of abs_m."
    )
    two = pd.DataFrame({"run": ["b/delayed", "c/delayed"], "exact_per_step": [0.5, 3],
                        "correction_acceptance": [0.9, 0.5], "saving_sd": [3.0, 0.2],
                        "saving_abs_m": [2.5, 0.7]})  # fmt: skip
    assert delayed_findings(two) == (
        "b: 0.5 exact evaluations per step (correction acceptance 0.9); 3x fewer exact "
        "evaluations per effective sample of sd than exact MALA, 2.5x fewer of abs_m.\nc: 3 "
        "exact evaluations per step (correction acceptance 0.5); 5x more exact evaluations per "
        "effective sample of sd than exact MALA, 1.4x more of abs_m."
    )
    assert controls_summary(_controls(), CFG) == (
        "Negative control (exact-ΔS MALA): FAILS on abs_m: the reference or the step size is "
        "wrong, or the chains have not mixed; nothing below can be trusted.\n\nPositive control "
        "(ΔS plus Gaussian noise of σ = 1.4 estimated from 8 draws): the naive chain is flagged "
        "on sd, abs_m (sd: bias 0.05 ± 0.004, z = 6.1); the penalised chain FAILS on abs_m (the "
        "estimated-variance rule is approximate at this noise level). The design has the power "
        "to see a heating of this size; each verdict below states the smallest bias it could "
        "have detected."
    )


def test_phi4_texts_unchanged():
    assert SUMMARY_TEXT == (
        "The table: the bias of sd (the thermometer: its exact expectation is the temperature) "
        "per backend, split by paired references (frozen error: mean-mode chain vs exact; "
        "noise: naive draws vs mean; penalty residual: penalised draws vs mean; penalty on the "
        "mean: mean with vs without penalty). Each cell: difference ± error, then 'detected' "
        "or, in brackets, the smallest difference the test would have detected (80 % power, "
        "Holm over each backend's tests). The figure: every effect on sd, |M| and S/V, ± 2 "
        "errors, detected points filled."
    )
    assert summary_text(("sd", "abs_m", "action_density")) == SUMMARY_TEXT
    assert "A naive chain should heat like σ² (sd above zero);" in SWEEP_TEXT
    assert sweep_text("ensemble", ("sd", "abs_m")) == SWEEP_TEXT.format(backend="ensemble")
    cfg = CompareConfig(L=6, beta=0.5, g=1.0)
    assert report_title(cfg) == "uqmcmc compare: phi^4 L=6, beta=0.5, g=1.0"


# -- another system's headline observables --------------------------------------------------


def test_decomposition_names_the_headline():
    table = _decomposition(*LJ)
    text = findings(table, 8, LJ)
    assert "shifts energy by 0.02" in text and "shifts rg by 0.03" in text
    assert "the mean's frozen error on rg is below 0.03" in text
    _no_phi4(text)
    summary = decomposition_summary(table, "energy")
    assert summary["backend"].tolist() == ["b", "c"]
    assert summary.loc[0, "frozen error"] == "0.02 ± 0.004 detected"
    assert [a.get_title() for a in plot_decomposition(table, LJ).axes] == ["energy", "rg"]
    _no_phi4(summary_text(LJ))
    assert "every effect on energy and rg," in summary_text(LJ)


def test_bias_decomposition_compares_the_given_observables():
    rng = np.random.default_rng(0)

    def run(shift):
        return make_idata({"energy": shift + 0.01 * rng.normal(size=(4, 200)),
                           "x2": shift + rng.normal(size=(4, 200, 2))})  # fmt: skip

    runs = {"b/mean/none": run(1.05), "b/draws/none": run(1.08), "b/draws/cd": run(1.05),
            "b/mean/cd": run(1.0)}  # fmt: skip
    res = SimpleNamespace(runs=runs, exact=run(1.0), config=SimpleNamespace(backends=("b",)))
    table = bias_decomposition(res, ("energy", "x2[1]"))
    assert set(table["observable"]) == {"energy", "x2[1]"}
    assert table[table["observable"] == "energy"].set_index("effect")["detected"]["noise"]


def test_sweep_names_the_headline():
    table = _sweep(*LJ)
    text = sweep_findings(table, "b", LJ)
    assert "the naive chain's energy is 0.04 ± 0.01 (detected)" in text
    _no_phi4(text)
    assert len(plot_sweep(table, None, LJ).axes) == 2
    oracle = pd.DataFrame({"run": ["oracle/draws/none", "oracle/draws/cd"], "bias": [0.1, 0.0],
                           "bias_err": [0.01, 0.01], "sigma": [1.4, 1.4]})  # fmt: skip
    assert plot_sweep(table, oracle, LJ).axes[0].get_ylabel() == "energy: difference ± 2 errors"
    text = sweep_text("ensemble", LJ)
    assert "(a shift of energy)" in text
    _no_phi4(text)


def test_sweep_table_uses_the_given_observables():
    def run(shift, var, acc):
        shape = (4, 200)
        rng = np.random.default_rng(int(10 * shift))
        return make_idata({"energy": shift + 0.01 * rng.normal(size=shape)},
                          sample_stats={"delta_var": np.full(shape, var),
                                        "acceptance_rate": np.full(shape, acc)})  # fmt: skip

    res = SimpleNamespace(
        runs={"b/mean/none": run(1.0, 0.0, 0.6)},
        sweep={"b/noise1/none": run(1.2, 1.0, 0.5), "b/noise1/cd": run(1.0, 1.0, 0.4)},
        config=SimpleNamespace(swept_backend="b", noise_sweep=(1.0,)),
    )
    table = sweep_table(res, LJ)
    assert set(table["observable"]) == {"energy"}
    assert "naive chain's energy" in sweep_findings(table, "b", LJ)


def test_efficiency_names_the_headline():
    run = make_idata(
        {"energy": np.zeros((4, 100)), "rg": np.zeros((4, 100))},
        attrs={"estimator": "EnergyDelta", "mode": "mean", "backend": "b", "wall_time_s": 2.0},
    )
    comparison = pd.DataFrame({"run": ["b/mean/none"] * 2, "observable": list(LJ),
                               "ess_bulk": [300.0, 100.0]})  # fmt: skip
    table = efficiency_table({"b/mean/none": run}, comparison, {"b": 10}, LJ)
    assert {"ess_energy_per_1k_evals", "ess_rg_per_1k_evals", "ess_rg_per_s"} <= set(table)
    assert not any(PHI4_NAMES.search(c) for c in table.columns)
    text = efficiency_findings(_efficiency(*LJ), ("b", "c"), LJ)
    assert "0.5 effective samples of energy per 1000 network evaluations" in text
    _no_phi4(text)


def test_delayed_names_the_headline():
    table = delayed_table(_delayed_runs(LJ), _delayed_comparison(*LJ), LJ)
    assert table["saving_energy"].tolist() == [1.0, 2.0]
    assert table["saving_rg"].tolist() == [1.0, 4.0]
    text = delayed_findings(table, LJ)
    assert text == (
        "b: 0.5 exact evaluations per step (correction acceptance 0.9); 2x fewer exact "
        "evaluations per effective sample of energy than exact MALA, 4x fewer of rg."
    )


def test_controls_name_the_lead_observable():
    text = controls_summary(_controls(*LJ), CFG, "energy")
    assert "(energy: bias 0.05 ± 0.004, z = 6.1)" in text
    assert "the naive chain is flagged on energy, rg" in text
    _no_phi4(text)


def test_a_single_observable():
    """A user's target without observables leads with the Stein term ``sd`` alone: the second
    observable's clauses are left out, nothing fails."""
    one = ("sd",)
    text = findings(_decomposition(), 8, one)
    assert "abs_m" not in text and "shifts sd by 0.02" in text
    assert decomposition_summary(_decomposition(), "sd")["backend"].tolist() == ["b", "c"]
    assert len(plot_decomposition(_decomposition().iloc[:0], one).axes) == 1
    assert "the naive chain's sd is" in sweep_findings(_sweep(), "b", one)
    assert len(plot_sweep(_sweep(), None, one).axes) == 2
    assert "effective samples of sd" in efficiency_findings(_efficiency(), ("b",), one)
    table = delayed_table(_delayed_runs(one), _delayed_comparison("sd", "other"), one)
    assert "saving_abs_m" not in table and "saving_other" not in table
    assert delayed_findings(table, one) == (
        "b: 0.5 exact evaluations per step (correction acceptance 0.9); 2x fewer exact "
        "evaluations per effective sample of sd than exact MALA."
    )
    assert "(sd: bias" in controls_summary(_controls(), CFG, "sd")
    assert "every effect on sd, ± 2 errors" in summary_text(one)
    assert sweep_text("b", one) == SWEEP_TEXT.format(backend="b")


def test_missing_columns_say_nothing():
    """A table without the lead observable's column (or without an exact MALA run) gives no
    sentence about it instead of failing."""
    assert efficiency_findings(_efficiency(), ("b",), LJ) == ""
    no_mala = delayed_table({"b/delayed": _delayed_runs(LJ)["b/delayed"]},
                            _delayed_comparison(*LJ), LJ)  # fmt: skip
    assert delayed_findings(no_mala, LJ) == (
        "b: 0.5 exact evaluations per step (correction acceptance 0.9)."
    )
    assert sweep_findings(_sweep(), "b", LJ) == ""


# -- the report's figures and title -----------------------------------------------------------


def test_report_title_of_other_targets():
    assert report_title(CompareConfig(target="lj", params={"N": 5, "d": 2})) == (
        "uqmcmc compare: lj N=5, d=2"
    )
    assert report_title(CompareConfig(target="lj")) == "uqmcmc compare: lj"


def test_present_observables_filters_missing_names():
    a = make_idata({"energy": np.zeros((2, 5)), "x2": np.ones((2, 5, 3))})
    b = make_idata({"energy": np.zeros((2, 5))})
    assert present_observables(["energy", "rg", "x2[0]"], a) == ["energy", "x2[0]"]
    assert present_observables(["energy", "rg", "x2[0]"], a, b) == ["energy"]


@pytest.mark.parametrize(
    ("distribution", "expected"),
    [(("energy", "rg"), ["energy"]), (None, ["energy"]), (("missing",), [])],
)
def test_distribution_figures_of_other_targets(distribution, expected):
    rng = np.random.default_rng(0)

    def run():
        return make_idata({"energy": rng.normal(size=(2, 50))})

    target = SimpleNamespace(distribution_observables=distribution)
    system = SimpleNamespace(name="lj", target=target, headline_observables=LJ)
    runs = {"exact-mala": run(), "b/draws/cd": run(), "b/mean/none": run()}
    histograms, chains = _distribution_figures(system, runs, run())
    if not expected:
        assert histograms == {} and chains == {}
        return
    assert list(histograms) == ["Histograms"]
    assert [f.axes[0].get_xlabel() for f in histograms["Histograms"]] == expected
    assert [len(chains[k]) for k in ("Trace plots", "Rank plots")] == [2, 2]
