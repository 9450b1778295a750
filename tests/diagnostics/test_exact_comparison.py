"""compare_to_exact, the distribution test and the epistemic spread."""

import jax.numpy as jnp
import numpy as np
import pytest
from _standins import reference_point
from scipy import signal

from uqmcmc import _arviz
from uqmcmc.diagnostics import compare_to_exact, epistemic_spread, estimate, ks_test, run_stats
from uqmcmc.diagnostics.epistemic import _spread
from uqmcmc.diagnostics.hypothesis import autocorrelation_time, holm, matched_blocks
from uqmcmc.mcmc import checkerboard, run_chains
from uqmcmc.targets import Phi4

BETA, BIASED_BETA = 0.5, 0.55


def _chain(beta: float, seed: int, exact: Phi4):
    """Checkerboard chains sampling Phi4(beta), observables and attrs of the exact target."""
    sampler = checkerboard(Phi4(4, beta, 1.0), 1.0)
    return run_chains(
        sampler, seed, jnp.zeros((16, 4, 4)), 2000, warmup=200, target=exact, progress=False
    )


@pytest.fixture(scope="module")
def phi4_runs():
    exact = Phi4(4, BETA, 1.0)
    return {
        "exact": _chain(BETA, 0, exact),
        "exact2": _chain(BETA, 1, exact),
        "biased": _chain(BIASED_BETA, 2, exact),
    }


@pytest.fixture(scope="module")
def table(phi4_runs):
    runs = {k: v for k, v in phi4_runs.items() if k != "exact"}
    return compare_to_exact(runs, phi4_runs["exact"]).set_index(["run", "observable"])


@pytest.mark.slow
def test_exact_vs_exact_passes(table):
    rows = table.loc["exact2"]
    assert list(rows.index) == ["abs_m", "m2", "m4", "action_density", "sd", "chi_abs", "binder"]
    assert rows["pass"].all()
    assert (rows["z"].abs() < 4).all(), rows["z"]
    assert (rows.loc[["abs_m", "action_density"], "dist_p"] > 0.01).all()
    assert set(rows.loc[["chi_abs", "binder"], "method"]) == {"jackknife"}
    assert rows["acceptance_rate"].between(0, 1).all()


def test_planted_bias_is_flagged(table):
    rows = table.loc["biased"]
    failed = set(rows.index[~rows["pass"].astype(bool)])
    assert {"abs_m", "m2", "action_density", "chi_abs"} <= failed, rows[["z", "p_holm"]]
    assert rows.loc["abs_m", "z"] > 4
    assert (rows.loc[["abs_m", "action_density"], "dist_p"] <= 0.002).all()


def test_exact_chain_matches_reference_table(phi4_runs):
    point = reference_point(4, BETA)
    rows = compare_to_exact({"exact": phi4_runs["exact"]}, point).set_index("observable")
    assert {"abs_m", "m2", "action_density", "chi_abs", "binder"} <= set(rows.index)
    assert (rows["z"].abs() < 4).all(), rows["z"]
    assert rows["pass"].all()


def test_derived_from_attrs_match_phi4_and_survive_netcdf(phi4_runs, tmp_path):
    idata = phi4_runs["exact"]
    _arviz.save(idata, tmp_path / "run.nc")
    loaded = _arviz.load(tmp_path / "run.nc")
    post = _arviz.group(idata, "posterior")
    want = Phi4(4, BETA, 1.0).derived(post)
    for name in ("chi_abs", "binder"):
        for run in (idata, loaded):
            got = estimate(run, name)
            assert (got["mean"], got["mcse"]) == pytest.approx(want[name], rel=1e-12)


def _ar1(rng, rho, shape):
    e = rng.normal(size=shape)
    e[..., 0] /= np.sqrt(1 - rho**2)  # start in the stationary distribution
    return signal.lfilter([np.sqrt(1 - rho**2)], [1, -rho], e, axis=-1)


def _rho(tau: float) -> float:
    """AR(1) coefficient of integrated autocorrelation time ``tau = (1 + rho) / (1 - rho)``."""
    return (tau - 1) / (tau + 1)


def test_ks_test_keeps_its_size_on_correlated_chains_and_has_power():
    rng = np.random.default_rng(0)
    null = [
        ks_test(_ar1(rng, 0.9, (4, 400)), _ar1(rng, 0.9, (4, 400)), n_perm=99)[1] for _ in range(60)
    ]
    # 60 null pairs at the 5% level: Binomial(60, 0.05) exceeds 8 with probability 0.003.
    # Plain KS on these correlated draws rejects about 80% of them.
    assert sum(p <= 0.05 for p in null) <= 8
    shifted = [
        ks_test(_ar1(rng, 0.9, (4, 400)), 0.6 + _ar1(rng, 0.9, (4, 400)), n_perm=99)[1]
        for _ in range(20)
    ]
    assert sum(p <= 0.05 for p in shifted) >= 14


def test_ks_test_keeps_its_size_between_slow_and_fast_mixing_chains():
    # The compare workflow's case: short, slowly mixing chains (exact-dS MALA, tau ~ 70 draws
    # in chains of 300) against a long, fast-mixing reference (checkerboard, tau ~ 14 draws in
    # chains of 2000), same distribution. Blocks of one common length for both samples
    # rejected about 35% of such pairs at the 5% level; blocks matched in autocorrelation
    # times about 3.5% (400 pairs).
    rng = np.random.default_rng(1)

    def pair(shift=0.0):
        slow = shift + _ar1(rng, _rho(70), (8, 300))
        return ks_test(slow, _ar1(rng, _rho(14), (8, 2000)), n_perm=99, n_grid=200)[1]

    null = [pair() for _ in range(40)]
    # Binomial(40, 0.05) exceeds 6 with probability 0.014
    assert sum(p <= 0.05 for p in null) <= 6, sorted(null)[:10]
    # power is set by the slow sample (ESS ~ 35): a shift of 0.8 sd is found
    assert sum(pair(0.8) <= 0.05 for _ in range(15)) >= 12


def test_ks_blocks_span_the_same_number_of_autocorrelation_times():
    rng = np.random.default_rng(2)
    slow, fast = _ar1(rng, _rho(60), (4, 300)), _ar1(rng, _rho(6), (3, 4000))
    tau_slow, tau_fast = (autocorrelation_time(a) for a in (slow, fast))
    b_slow, b_fast = matched_blocks([slow, fast], 20.0)
    assert b_slow.shape == (4, 300)  # chains shorter than 20 tau: whole chains
    assert b_fast.shape[1] / tau_fast == pytest.approx(300 / tau_slow, rel=0.05)
    assert b_fast.size > 0.95 * fast.size  # hardly a draw dropped
    # long chains on both sides: blocks of 10 to 20 autocorrelation times
    b_a, b_b = matched_blocks([fast, _ar1(rng, _rho(3), (2, 8000))], 20.0)
    assert 10 < b_a.shape[1] / tau_fast <= 20


def test_holm_adjustment():
    adj = holm(np.array([0.01, 0.04, 0.03, 0.005, np.nan]))
    np.testing.assert_allclose(adj[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adj[4])


def test_epistemic_spread_separates_monte_carlo_noise():
    # 100 members, each offset by N(0, tau^2), each with iid draws: MCSE 1/sqrt(1000) > tau
    rng = np.random.default_rng(3)
    tau, k = 0.02, 100
    sets = [
        _arviz.make_idata({"x": d + rng.normal(size=(4, 250))}) for d in tau * rng.normal(size=k)
    ]
    row = epistemic_spread({"ens": sets}, {"x": 0.0}).iloc[0]
    mc = 1 / np.sqrt(1000)
    assert row["n_members"] == k
    assert abs(row["mcse_part"] / mc - 1) < 0.1
    # sampling sd of the spread^2 estimator: (tau^2 + mc^2) sqrt(2 / (k - 1))
    err = (tau**2 + mc**2) * np.sqrt(2 / (k - 1))
    assert abs(row["epistemic_sd"] ** 2 - tau**2) / err < 4
    assert row["inside"]


def test_epistemic_interval_has_its_coverage():
    # The truth is like one more member (the ensemble as a posterior over models): members'
    # values and the truth are independent N(0, tau^2) draws; members carry MC noise mc << tau.
    rng = np.random.default_rng(4)
    tau, mc, k, n = 0.05, 0.005, 5, 2000
    truth = tau * rng.normal(size=n)
    means = tau * rng.normal(size=(n, k)) + mc * rng.normal(size=(n, k))
    rows = [_spread(m, np.full(k, mc), 0.95) for m in means]
    inside = [r["lower"] <= t <= r["upper"] for r, t in zip(rows, truth, strict=True)]
    assert abs(np.mean(inside) - 0.95) < 4 * np.sqrt(0.95 * 0.05 / n)


def test_epistemic_spread_flags_a_missed_exact_value():
    rng = np.random.default_rng(5)
    sets = [_arviz.make_idata({"x": o + 0.1 * rng.normal(size=(4, 200))}) for o in (1, 1.01, 0.99)]
    row = epistemic_spread({"ens": sets}, {"x": (1.5, 0.01)}).iloc[0]
    assert not row["inside"] and row["z"] > 4


def test_run_stats_and_bad_input():
    out_of_range = np.zeros((2, 10), bool)
    out_of_range[0, 3] = True
    ss = {
        "acceptance_rate": np.full((2, 10), 0.25),
        "penalty": np.where(out_of_range, np.inf, 0.5),
        "delta_var": np.full((2, 10), 4.0),
        "nonfinite": np.zeros((2, 10), bool),
        "out_of_range": out_of_range,
    }
    idata = _arviz.make_idata({"x": np.zeros((2, 10)), "m2": np.ones((2, 10))}, ss)
    stats = run_stats(idata)
    assert stats["acceptance_rate"] == 0.25 and stats["delta_sd_median"] == 2.0
    assert stats["penalty_max"] == 0.5 and stats["out_of_range"] == 1 and stats["nonfinite"] == 0
    with pytest.raises(ValueError, match="level"):
        compare_to_exact({"a": idata}, idata, level=1.5)
    with pytest.raises(ValueError, match="runs"):
        compare_to_exact({}, idata)
    with pytest.raises(ValueError, match="nope"):
        compare_to_exact({"a": idata}, idata, observables=["nope"])
    with pytest.raises(ValueError, match="'L'"):
        post = {"abs_m": np.ones((2, 10)), "m2": np.ones((2, 10))}
        estimate(_arviz.make_idata(post, attrs={"target": "Phi4"}), "chi_abs")  # no L
    with pytest.raises(ValueError, match="members"):
        epistemic_spread({"ens": [idata]})
    with pytest.raises(ValueError, match="coverage"):
        epistemic_spread({"ens": [idata, idata]}, coverage=0)
