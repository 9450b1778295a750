"""DeepEnsemble: mixture variance, gap behaviour, joint draws, energy outputs, save/load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc.nets import MLP, EnergyNet
from uqmcmc.targets import Phi4
from uqmcmc.uq.data import gap_regression
from uqmcmc.uq.ensemble import DeepEnsemble
from uqmcmc.uq.training import cosine_adam

MLP_KW = {"in_features": 1, "hidden": [32, 32]}
IN_DATA = jnp.r_[jnp.linspace(-0.9, -0.5, 9), jnp.linspace(0.5, 0.9, 9)][:, None]
GAP = jnp.linspace(-0.15, 0.15, 7)[:, None]
OUTSIDE = jnp.r_[jnp.linspace(-1.6, -1.3, 4), jnp.linspace(1.3, 1.6, 4)][:, None]


@pytest.fixture(scope="module")
def ensemble():
    x, y = gap_regression(0, 64)
    ens = DeepEnsemble(MLP, MLP_KW, n_members=8, loss="gaussian_nll")
    return ens.fit(
        x, y, key=jax.random.key(1), epochs=200, batch_size=32, optimizer=cosine_adam(1e-2),
        progress=False,
    )  # fmt: skip


@pytest.mark.slow
def test_variance_is_mixture_variance(ensemble):
    means, variances = ensemble.predict_members(GAP)
    assert means.shape == variances.shape == (8, 7) and bool((variances > 0).all())
    mean, var = ensemble.predict_mean_var(GAP)
    assert jnp.allclose(mean, means.mean(0))
    assert jnp.allclose(var, variances.mean(0) + means.var(0), rtol=1e-5)
    _, epi = ensemble.predict_mean_var(GAP, epistemic_only=True)
    assert jnp.allclose(epi, means.var(0), rtol=1e-5)


def test_variance_larger_in_gap_and_outside(ensemble):
    v_in = float(ensemble.predict_mean_var(IN_DATA)[1].mean())
    v_gap = float(ensemble.predict_mean_var(GAP)[1].mean())
    v_out = float(ensemble.predict_mean_var(OUTSIDE)[1].mean())
    print(f"DeepEnsemble gap/in-data variance ratio {v_gap / v_in:.1f}, outside {v_out / v_in:.1f}")
    assert v_gap > 2 * v_in and v_out > 2 * v_in


def test_draws_are_whole_members(ensemble):
    x = jnp.r_[GAP, OUTSIDE]
    means, _ = ensemble.predict_members(x)
    draws = ensemble.predict_draws(jax.random.key(0), x, 20)
    assert draws.shape == (20, 15)
    # every draw is one member over the whole batch, not a per-point mixture
    match = jnp.all(jnp.isclose(draws[:, None, :], means[None], atol=1e-6), axis=-1)
    assert bool(match.any(axis=1).all())
    no_repeat = ensemble.predict_draws(jax.random.key(0), x, 8, replace=False)
    assert jnp.allclose(jnp.sort(no_repeat[:, 0]), jnp.sort(means[:, 0]), atol=1e-6)


def test_joint_draws_keep_the_covariance(ensemble):
    """Var of f(x') - f(x) from draws matches the ensemble's own, far below var(x) + var(x')."""
    x = jnp.array([[0.0], [1.4], [-0.7]])
    x_new = x + 0.01
    d_mean, d_var = ensemble.predict_delta_mean_var(x, x_new)
    means, _ = ensemble.predict_members(jnp.r_[x, x_new])
    diff_members = means[:, 3:] - means[:, :3]
    assert jnp.allclose(d_var, diff_members.var(0), rtol=1e-5)
    n = 4000
    draws = ensemble.predict_draws(jax.random.key(5), jnp.r_[x, x_new], n)
    diff = np.asarray(draws[:, 3:] - draws[:, :3], dtype=np.float64)
    centred = np.asarray(diff_members - diff_members.mean(0), dtype=np.float64)
    mu4, sig2 = (centred**4).mean(0), (centred**2).mean(0)
    z = (diff.var(0, ddof=1) - sig2) / np.sqrt((mu4 - sig2**2) / n)
    print("ensemble joint-draw z-scores", np.round(z, 2))
    assert np.all(np.abs(z) < 4), z
    _, epi = ensemble.predict_mean_var(jnp.r_[x, x_new], epistemic_only=True)
    independent = epi[:3] + epi[3:]
    assert np.all(np.asarray(d_var) < 0.1 * np.asarray(independent))


def test_save_load_predicts_identically(ensemble, tmp_path):
    ensemble.save(tmp_path / "ens")
    loaded = DeepEnsemble.load(tmp_path / "ens")
    assert loaded.n_members == 8 and loaded.loss == "gaussian_nll"
    for a, b in zip(ensemble.predict_mean_var(GAP), loaded.predict_mean_var(GAP), strict=True):
        assert jnp.array_equal(a, b)
    key = jax.random.key(3)
    assert jnp.array_equal(ensemble.predict_draws(key, GAP, 5), loaded.predict_draws(key, GAP, 5))
    from uqmcmc.uq.dropout import MCDropout

    with pytest.raises(ValueError, match="expected a 'MCDropout'"):
        MCDropout.load(tmp_path / "ens")


@pytest.mark.slow
def test_energy_network_ensemble_on_phi4():
    target = Phi4(4, 0.5, 1.0)
    x = jax.random.normal(jax.random.key(0), (48, 4, 4)) * 0.7
    ens = DeepEnsemble(EnergyNet, {"channels": 8, "depth": 1, "kernel_size": 1}, n_members=3)
    ens.fit(x, target.action(x), key=0, epochs=5, progress=False)
    mean, var = ens.predict_mean_var(x[:6])
    assert mean.shape == var.shape == (6,)
    assert ens.predict_draws(jax.random.key(0), x[:6], 4).shape == (4, 6)
    _, d_var = ens.predict_delta_mean_var(x[:6], x[:6] + 0.01)
    assert d_var.shape == (6,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_members"):
        DeepEnsemble(MLP, MLP_KW, n_members=1)
    with pytest.raises(ValueError, match="loss"):
        DeepEnsemble(MLP, MLP_KW, loss="l1")
    with pytest.raises(ValueError, match="not fitted"):
        DeepEnsemble(MLP, MLP_KW).predict_mean_var(GAP)
