"""BayesianLastLayer: evidence maximisation, exact joint draws, user networks, save/load."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from uqmcmc.nets import MLP, EnergyNet
from uqmcmc.targets import Phi4
from uqmcmc.uq.data import gap_regression
from uqmcmc.uq.last_layer import BayesianLastLayer, design, evidence_fit
from uqmcmc.uq.training import cosine_adam

IN_DATA = jnp.r_[jnp.linspace(-0.9, -0.5, 9), jnp.linspace(0.5, 0.9, 9)][:, None]
GAP = jnp.linspace(-0.15, 0.15, 7)[:, None]
OUTSIDE = jnp.r_[jnp.linspace(-1.6, -1.3, 4), jnp.linspace(1.3, 1.6, 4)][:, None]


class UserNet(nnx.Module):
    """A user's own network following the convention (no uqmcmc base class)."""

    reduce = "none"
    site_axes = 0

    def __init__(self, width: int, *, rngs: nnx.Rngs):
        self.a = nnx.Linear(1, width, rngs=rngs)
        self.b = nnx.Linear(width, width, rngs=rngs)
        self.readout = nnx.Linear(width, 1, rngs=rngs)

    def features(self, x):
        return jnp.tanh(self.b(jnp.tanh(self.a(x))))

    def __call__(self, x):
        return self.readout(self.features(x))[..., 0]


@pytest.fixture(scope="module")
def bll():
    x, y = gap_regression(0, 64)
    model = BayesianLastLayer(UserNet, {"width": 32})
    return model.fit(
        x, y, key=jax.random.key(1), epochs=200, batch_size=32, optimizer=cosine_adam(1e-2),
        progress=False,
    )  # fmt: skip


def test_evidence_fit_recovers_noise_and_prior_scale():
    """Linear regression with w ~ N(0, 1/alpha): evidence maximisation finds beta and alpha.

    Feature scales spread over 2.5 decades, so only gamma ~ 145 of the 200 weights are
    well determined: that separates gamma from p (alpha's update) and n - gamma from n
    (beta's update).
    """
    rng = np.random.default_rng(0)
    n, p, alpha, sigma = 300, 200, 4.0, 0.3
    phi = rng.normal(size=(n, p)) * np.logspace(-2, 0.5, p)
    w = rng.normal(size=p) / np.sqrt(alpha)
    y = phi @ w + sigma * rng.normal(size=n)
    post = evidence_fit(phi, y)
    assert 50 < post.gamma < 190
    # noise variance: relative standard error about sqrt(2 / (n - gamma))
    z = (1 / post.beta - sigma**2) / (sigma**2 * np.sqrt(2 / (n - post.gamma)))
    # prior precision: set by the gamma well-determined weights
    z_alpha = np.log(post.alpha / alpha) / np.sqrt(2 / post.gamma)
    print(f"evidence fit z-scores: noise variance {z:.2f}, prior precision {z_alpha:.2f}")
    assert abs(z) < 4 and abs(z_alpha) < 4, (z, z_alpha)
    # the posterior is the closed form at the fitted precisions
    a_mat = post.alpha * np.eye(p) + post.beta * phi.T @ phi
    assert np.allclose(post.cov, np.linalg.inv(a_mat), rtol=1e-6, atol=1e-12)
    assert np.allclose(post.mean, post.beta * np.linalg.solve(a_mat, phi.T @ y))
    assert np.allclose(post.factor @ post.factor.T, post.cov, atol=1e-12)
    # fixed precisions are respected
    fixed = evidence_fit(phi, y, alpha=1.0, beta=2.0)
    assert (fixed.alpha, fixed.beta) == (1.0, 2.0)


def test_gap_and_outside_variance_ratio(bll):
    v_in = float(bll.predict_mean_var(IN_DATA, epistemic_only=True)[1].mean())
    v_gap = float(bll.predict_mean_var(GAP, epistemic_only=True)[1].mean())
    v_out = float(bll.predict_mean_var(OUTSIDE, epistemic_only=True)[1].mean())
    print(f"BLL epistemic gap/in-data ratio {v_gap / v_in:.1f}, outside {v_out / v_in:.1f}")
    assert v_gap > 2 * v_in and v_out > 2 * v_in
    noise = 1 / bll.posterior.beta
    t_in, t_gap = (float(bll.predict_mean_var(x)[1].mean()) for x in (IN_DATA, GAP))
    assert np.isclose(t_gap - t_in, v_gap - v_in, rtol=1e-3) and t_in > noise
    print(f"BLL total (with noise) gap/in-data variance ratio {t_gap / t_in:.2f}")


def test_exact_joint_draws(bll):
    """Var of f(x') - f(x): closed form, and the draws' sample variance within sampling error."""
    x = jnp.array([[0.0], [1.4], [-0.7]])
    x_new = x + 0.01
    d_mean, d_var = bll.predict_delta_mean_var(x, x_new)
    rows = np.asarray(design(bll.model, x_new) - design(bll.model, x), np.float64)
    exact = np.einsum("np,pq,nq->n", rows, bll.posterior.cov, rows)
    assert np.allclose(d_var, exact, rtol=1e-4)
    assert np.allclose(d_mean, rows @ bll.posterior.mean, rtol=1e-4, atol=1e-6)
    n = 4000
    draws = np.asarray(bll.predict_draws(jax.random.key(0), jnp.r_[x, x_new], n), np.float64)
    diff = draws[:, 3:] - draws[:, :3]
    z = (diff.var(0, ddof=1) - exact) / (exact * np.sqrt(2 / (n - 1)))  # Gaussian draws
    print("BLL joint-draw z-scores", np.round(z, 2))
    assert np.all(np.abs(z) < 4), z
    _, var = bll.predict_mean_var(jnp.r_[x, x_new], epistemic_only=True)
    assert np.all(exact < 0.1 * np.asarray(var[:3] + var[3:]))


def test_save_load_predicts_identically(bll, tmp_path):
    bll.save(tmp_path / "bll")
    with pytest.raises(ValueError, match="not one of uqmcmc's networks"):
        BayesianLastLayer.load(tmp_path / "bll")
    loaded = BayesianLastLayer.load(tmp_path / "bll", model_cls=UserNet)
    for a, b in zip(bll.predict_mean_var(GAP), loaded.predict_mean_var(GAP), strict=True):
        assert jnp.array_equal(a, b)
    key = jax.random.key(4)
    assert jnp.array_equal(bll.predict_draws(key, GAP, 5), loaded.predict_draws(key, GAP, 5))
    assert loaded.posterior.beta == bll.posterior.beta


@pytest.mark.slow
def test_pretrained_network_and_energy_outputs():
    """A given trained network is used as is; energy nets regress on site-summed features."""
    target = Phi4(4, 0.5, 1.0)
    x = jax.random.normal(jax.random.key(0), (40, 4, 4)) * 0.7
    net = EnergyNet(channels=8, depth=1, kernel_size=1, rngs=nnx.Rngs(0))
    model = BayesianLastLayer(EnergyNet, {"channels": 8, "depth": 1, "kernel_size": 1})
    model.fit(x, target.action(x), key=0, model=net)
    assert jnp.array_equal(model.model.stem.kernel[...], net.stem.kernel[...])
    rows = design(model.model, x[:3])
    assert rows.shape == (3, 9)
    assert jnp.allclose(rows[:, -1], 16.0)  # the bias column counts the sites
    mean, var = model.predict_mean_var(x[:3])
    assert mean.shape == var.shape == (3,)
    assert model.predict_draws(jax.random.key(0), x[:3], 2).shape == (2, 3)
    with pytest.raises(ValueError, match="model must be a MLP"):
        BayesianLastLayer(MLP, {"in_features": 1}).fit(x, x, key=0, model=net)


def test_the_predictive_variance_is_never_negative_for_an_ill_conditioned_posterior(bll):
    """A posterior covariance spanning 14 decades (as a fit on energies and force rows can
    give): the epistemic variance phi^T cov phi, computed in float32 as |factor^T phi|^2, stays
    >= 0 (as phi^T cov phi it comes out negative here, and came out at -6e-5 in a smoke run on
    Python 3.13, which the calibration metrics refuse); on the fitted posterior it matches
    the float64 value."""
    import copy

    x = gap_regression(1, 200)[0]
    phi = np.asarray(design(bll.model, x), dtype=float)
    p = phi.shape[1]
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(p, p)))
    # the smallest scales along the design's largest directions: big cancellations
    u = np.linalg.svd(phi, full_matrices=True)[2].T
    factor = u @ np.diag(np.logspace(-4, 3, p)) @ q.T
    ill = copy.copy(bll)
    ill.posterior = bll.posterior._replace(cov=factor @ factor.T, factor=factor)
    ill._set_arrays()
    var = np.asarray(ill.predict_mean_var(x, epistemic_only=True)[1], dtype=float)
    assert (var >= 0).all(), var.min()
    fitted = np.asarray(bll.predict_mean_var(x, epistemic_only=True)[1], dtype=float)
    cov = np.asarray(bll.posterior.cov, dtype=float)
    np.testing.assert_allclose(fitted, np.einsum("np,pq,nq->n", phi, cov, phi), rtol=1e-3)
