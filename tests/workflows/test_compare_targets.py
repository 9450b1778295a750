"""`uqmcmc compare` on targets other than phi^4: a user's class with only action and grad,
named by module path, with energy surrogates; the settings that are refused before any work."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest
from _ci_legs import ci_leg

from uqmcmc import _arviz
from uqmcmc.cli import main
from uqmcmc.workflows import CompareConfig

OWN = textwrap.dedent(
    """
    import jax.numpy as jnp

    class Stretched:
        '''A Gaussian with standard deviations (1, 2, 0.5) * scale; only action and grad.'''
        def __init__(self, scale=1.0):
            self.var = (jnp.asarray((1.0, 2.0, 0.5)) * scale) ** 2
        def action(self, x):
            return 0.5 * jnp.sum(x**2 / self.var)
        def grad(self, x):
            return x / self.var

    class Anharmonic:
        '''Independent anharmonic oscillators, S = sum x^2 / (2 s^2) + lam x^4.'''
        def __init__(self, lam=0.01):
            self.var = jnp.asarray((1.0, 2.0, 0.5)) ** 2
            self.lam = lam
        def action(self, x):
            return jnp.sum(0.5 * x**2 / self.var + self.lam * x**4)
        def grad(self, x):
            return x / self.var + 4 * self.lam * x**3
    """
)

#: Settings of the run below (--config): long enough that the frozen error is below the MCSE.
SETTINGS = """\
quick = true
backends = ["last_layer"]
chains = 16
steps = 1000
warmup = 200
thin = 2
exact_steps = 2000
member_steps = 100
n_fixed = 2
delayed_steps = 200
delayed_substeps = 4
n_train = 1000
n_test = 20
epochs = 200
identity_positions = 20
noise_sweep = []

[params]
lam = 0.01
"""


@pytest.fixture
def own_module(user_module):
    return user_module("user_gaussian", OWN)


@pytest.mark.slow
def test_a_users_target_through_compare_with_energy_surrogates(own_module, tmp_path, capsys):
    """A class written outside the package, named by module path, with only action and grad
    (an anharmonic 3-D target): the command trains energy surrogates (the default off phi^4; a
    Bayesian last layer on the default MLP, on energies and forces of 1000 exact
    configurations), runs every chain set, writes the full report and says which defaults it
    used (the delayed-acceptance control with 4-step sub-chains). Then the frozen error of
    sd (the paired difference of the mean-mode chain and the exact chain with the same random
    numbers) is below the penalised chains' MCSE of sd, and
    every penalised chain agrees with the exact chain within 4 MCSE on every observable. The
    run's controls say it could see a bias: exact-ΔS MALA passes, the noisy oracle without
    penalty is flagged. (With energy labels only, on 180 configurations, sd is off by 5 MCSE.)"""
    config = tmp_path / "run.toml"
    config.write_text(SETTINGS)
    out = tmp_path / "rep"
    code = main(["compare", "--target", f"{own_module}:Anharmonic", "--shape", "3",
                 "--config", str(config), "--out", str(out), "--no-progress"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "user_gaussian:Anharmonic: energy surrogates" in printed
    assert "default network: an MLP of the flattened configuration" in printed
    assert "default observables: each coordinate x, its square x2 and the Stein term sd" in printed
    for name in ("report.html", "comparison.csv", "summary.csv", "calibration.csv"):
        assert (out / name).exists(), name
    attrs = _arviz.attrs(_arviz.load(out / "last_layer_draws_cd.nc"))
    assert attrs["estimator"] == "EnergyDelta" and attrs["lam"] == 0.01
    report = (out / "report.md").read_text()
    assert "uqmcmc compare: user_gaussian:Anharmonic lam=0.01" in report
    assert "Predicted vs true S (the energy)" in report

    table = pd.read_csv(out / "comparison.csv").set_index(["run", "observable"])
    assert {"sd", "x[0]", "x2[2]"} <= set(table.loc["exact-mala"].index)
    assert table.loc["exact-mala"]["pass"].all(), table.loc["exact-mala"]
    assert not table.loc["oracle/draws/none"]["pass"].all()  # power: a known heating is seen
    frozen = pd.read_csv(out / "decomposition.csv").set_index(["group", "effect"])
    frozen = frozen.loc[("last_layer", "frozen error")]
    assert frozen["observable"] == "sd"
    mcse = table.loc[("last_layer/mean/cd", "sd"), "mcse"]
    assert abs(frozen["difference"]) < mcse, (frozen["difference"], mcse)
    for run in ("last_layer/mean/cd", "last_layer/draws/cd"):
        z = table.loc[run]["z"]
        assert (z.abs() < 4).all(), (run, z)
    # Delayed acceptance with 4-step energy sub-chains: exact, at most one exact action a step.
    assert (table.loc["last_layer/delayed"]["z"].abs() < 4).all(), table.loc["last_layer/delayed"]
    delayed = pd.read_csv(out / "delayed.csv").set_index("run")
    assert 0.5 < delayed.loc["last_layer/delayed", "exact_per_step"] <= 1.0, delayed
    assert "proposes with 4 MALA steps" in report
    # The domain check's negative control: the exact chain samples the training distribution.
    shift = pd.read_csv(out / "domain_shift.csv").set_index(["backend", "chain"])
    assert shift.loc[("last_layer", "exact chain"), "verdict"] == "within range", shift


@pytest.mark.slow
@ci_leg(1, "the domain-shift run (about 1.5 min)")
def test_a_training_set_drawn_elsewhere_is_seen_out_of_range(own_module, tmp_path, capsys):
    """The domain-shift experiment on a Gaussian (positive control of the domain check): the
    training and test configurations are drawn at half the width the chains sample
    (``--train-param scale=0.5``), so about 60 % of the exact chain lies beyond the backend's
    calibrated range (its largest variance on the test split; at most 21 % in distribution),
    and the report says so. The labels are the sampled target's action all the same: the last
    layer on x and x^2 extrapolates a Gaussian exactly, so its frozen error stays below 1e-3
    (labels of the scale-0.5 target would make it sample that target: sd off by far more)."""
    out = tmp_path / "rep"
    code = main([
        "compare", "--target", f"{own_module}:Stretched", "--shape", "3", "--quick",
        "--train-param", "scale=0.5", "--backends", "last_layer", "--steps", "300",
        "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    shift = pd.read_csv(out / "domain_shift.csv").set_index(["backend", "chain"])
    exact = shift.loc[("last_layer", "exact chain")]
    assert exact["verdict"] == "out of range" and exact["fraction"] > 0.4, exact
    report = (out / "report.md").read_text()
    assert "(trained at scale=0.5)" in report
    assert "drawn at scale=0.5, chains at scale at its default" in report
    frozen = pd.read_csv(out / "decomposition.csv").set_index(["group", "effect"])
    assert abs(frozen.loc[("last_layer", "frozen error"), "difference"]) < 1e-3


def test_settings_of_another_target_are_checked_before_any_work(own_module):
    with pytest.raises(ValueError, match="L, beta and g are phi\\^4's settings"):
        CompareConfig(target="lj", L=6).validate()
    with pytest.raises(ValueError, match="LJ cluster's surrogate is an energy network"):
        CompareConfig(target="lj", surrogate="gradient").validate()
    with pytest.raises(ValueError, match="no network for a gradient surrogate"):
        CompareConfig(target=f"{own_module}:Stretched", shape=(3,), surrogate="gradient").validate()
    with pytest.raises(ValueError, match="surrogate must be one of"):
        CompareConfig(surrogate="forces").validate()
    with pytest.raises(ValueError, match="delayed_substeps = 2 needs an energy surrogate"):
        CompareConfig(delayed_substeps=2).validate()  # phi^4's default: a gradient surrogate
    CompareConfig(delayed_substeps=2, surrogate="energy").validate()
    with pytest.raises(ValueError, match="does not take parameter 'size'"):
        CompareConfig(target=f"{own_module}:Stretched", params={"size": 2}).validate()
    quick = CompareConfig.quick_config(target="lj").validate()
    assert (quick.L, quick.beta, quick.surrogate_kind) == (8, 0.3, "energy")
    assert CompareConfig.quick_config().surrogate_kind == "gradient"


def test_the_settings_name_the_network_of_the_surrogate(own_module):
    cfg = CompareConfig(target=f"{own_module}:Stretched", shape=(3,)).validate()
    net = cfg.backend_settings().network
    assert net.cls.__name__ == "MLP" and net.kwargs["in_features"] == (3,)
    energy = CompareConfig(surrogate="energy").backend_settings().network
    assert energy.cls.__name__ == "EnergyNet"
    assert CompareConfig().backend_settings().net.cls.__name__ == "RCNN"
    lj = CompareConfig(target="lj", params={"N": 7, "d": 2}).backend_settings().network
    assert lj.cls.__name__ == "AtomisticEnergyNet" and lj.kwargs["d"] == 2
    assert np.isclose(CompareConfig(target="lj").system().temperature, 0.3)


@pytest.mark.slow
@ci_leg(2, "the costliest end-to-end run (about 2 min, mostly compiling)")
def test_the_lj_cluster_runs_through_compare(tmp_path):
    """The built-in cluster (7 atoms in 2-D, tiny settings): atomistic energy surrogates learn
    the action minus its exact part (the container and the repulsive core), every chain set
    runs and the report leads with the energy and the radius of gyration."""
    from uqmcmc.workflows import run_compare

    cfg = CompareConfig.quick_config(
        target="lj", params={"N": 7, "d": 2, "temperature": 0.5}, backends=("last_layer",),
        steps=40, warmup=20, exact_steps=200, member_steps=40, n_train=16, n_test=4, epochs=2,
        identity_positions=8, noise_sweep=(), out=str(tmp_path / "rep"),
    )  # fmt: skip
    res = run_compare(cfg, progress=False)
    assert res.config.system().headline_observables == ("energy", "rg")
    assert {"energy", "rg", "psi6", "heat_capacity"} <= set(res.comparison["observable"])
    decomposition = pd.read_csv(res.out / "decomposition.csv")
    assert set(decomposition["observable"]) == {"energy", "rg"}
    attrs = _arviz.attrs(res.runs["last_layer/mean/cd"])
    assert attrs["estimator"] == "EnergyDelta" and attrs["N"] == 7
    assert "uqmcmc compare: lj N=7, d=2, temperature=0.5" in (res.out / "report.md").read_text()
    mean, _, truth = res.predictions["last_layer"]  # the full action: baseline + surrogate
    assert np.corrcoef(mean, truth)[0, 1] > 0.5
