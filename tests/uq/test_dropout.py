"""MCDropout: one mask per draw over the whole batch, joint draws, save/load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc.nets import MLP
from uqmcmc.uq.data import gap_regression
from uqmcmc.uq.dropout import MCDropout
from uqmcmc.uq.training import cosine_adam

MLP_KW = {"in_features": 1, "hidden": [64, 64], "dropout": 0.2}
IN_DATA = jnp.r_[jnp.linspace(-0.9, -0.5, 9), jnp.linspace(0.5, 0.9, 9)][:, None]
GAP = jnp.linspace(-0.15, 0.15, 7)[:, None]
OUTSIDE = jnp.r_[jnp.linspace(-1.6, -1.3, 4), jnp.linspace(1.3, 1.6, 4)][:, None]


@pytest.fixture(scope="module")
def mc():
    x, y = gap_regression(0, 64)
    model = MCDropout(MLP, MLP_KW, n_masks=64)
    return model.fit(
        x, y, key=jax.random.key(1), epochs=200, batch_size=32, optimizer=cosine_adam(1e-2),
        progress=False,
    )  # fmt: skip


@pytest.mark.slow
def test_prediction_is_deterministic_with_fixed_masks(mc):
    a, b = mc.predict_mean_var(GAP), mc.predict_mean_var(GAP)
    assert jnp.array_equal(a[0], b[0]) and jnp.array_equal(a[1], b[1])
    fresh = mc.predict_mean_var(GAP, key=jax.random.key(9))
    assert not jnp.array_equal(a[1], fresh[1])
    assert bool((a[1] > 0).all())


def test_gap_and_outside_variance_ratio(mc):
    v_in = float(mc.predict_mean_var(IN_DATA)[1].mean())
    v_gap = float(mc.predict_mean_var(GAP)[1].mean())
    v_out = float(mc.predict_mean_var(OUTSIDE)[1].mean())
    # reported, not required: MC dropout need not grow its variance in a gap
    print(f"MCDropout gap/in-data variance ratio {v_gap / v_in:.2f}, outside {v_out / v_in:.2f}")
    assert v_out > v_in


def test_one_mask_for_the_whole_batch(mc):
    x = jnp.array([[0.3], [0.3], [0.3], [-0.6]])
    draws = mc.predict_draws(jax.random.key(0), x, 50)
    assert draws.shape == (50, 4)
    # identical inputs get identical outputs within a draw (one mask for the batch) ...
    assert jnp.array_equal(draws[:, 0], draws[:, 1]) and jnp.array_equal(draws[:, 0], draws[:, 2])
    # ... and different outputs across draws (fresh masks)
    assert float(draws[:, 0].std()) > 0
    # and an input's draw does not depend on the rest of the batch
    alone = mc.predict_draws(jax.random.key(0), x[3:], 50)
    assert jnp.allclose(alone[:, 0], draws[:, 3], atol=1e-6)


def test_joint_draws_keep_the_covariance(mc):
    """Var of f(x') - f(x) from fresh-mask draws vs the backend's own (its n_masks masks)."""
    x = jnp.array([[0.0], [1.4], [-0.7]])
    x_new = x + 0.01
    _, d_var = mc.predict_delta_mean_var(x, x_new)
    n = 4000
    draws = np.asarray(mc.predict_draws(jax.random.key(5), jnp.r_[x, x_new], n), np.float64)
    diff = draws[:, 3:] - draws[:, :3]
    c = diff - diff.mean(0)
    mu4, sig2 = (c**4).mean(0), (c**2).mean(0)
    se2 = (mu4 - sig2**2) * (1 / n + 1 / mc.n_masks)  # both are sample variances
    z = (diff.var(0, ddof=1) - np.asarray(d_var)) / np.sqrt(se2)
    print("MC dropout joint-draw z-scores", np.round(z, 2))
    assert np.all(np.abs(z) < 4), z
    _, var = mc.predict_mean_var(jnp.r_[x, x_new], epistemic_only=True)
    assert np.all(diff.var(0) < 0.1 * np.asarray(var[:3] + var[3:]))


def test_save_load_predicts_identically(mc, tmp_path):
    mc.save(tmp_path / "mc")
    loaded = MCDropout.load(tmp_path / "mc")
    for a, b in zip(mc.predict_mean_var(GAP), loaded.predict_mean_var(GAP), strict=True):
        assert jnp.array_equal(a, b)
    key = jax.random.key(2)
    assert jnp.array_equal(mc.predict_draws(key, GAP, 6), loaded.predict_draws(key, GAP, 6))


def test_needs_dropout_layers():
    with pytest.raises(ValueError, match="Dropout"):
        MCDropout(MLP, {"in_features": 1}).fit(jnp.zeros((4, 1)), jnp.zeros(4), key=0)
    with pytest.raises(ValueError, match="n_masks"):
        MCDropout(MLP, MLP_KW, n_masks=1)
