"""DeepKernelRegression: the sparse GP against the exact GP, pathwise draws against the
posterior covariance, joint draws of a fitted backend, lattice outputs, save/load."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from uqmcmc import _arviz
from uqmcmc.nets import MLP, RCNN, EnergyNet
from uqmcmc.targets import Phi4
from uqmcmc.uq import gp
from uqmcmc.uq import random_features as rff
from uqmcmc.uq.deep_kernel import DeepKernelRegression
from uqmcmc.uq.gp import GPParams, Obs

#: the feature count of predict_draws unless a user asks for another
DEFAULT_RFF = inspect.signature(DeepKernelRegression).parameters["rff_features"].default

# the GP core, compiled once per kernel (eager evaluation compiles every operation)
collapsed = jax.jit(gp._collapsed, static_argnums=0)
predict = jax.jit(gp._predict, static_argnums=0)
draws_fn = jax.jit(
    jax.vmap(rff._draw, in_axes=(None, None, None, None, None, 0)), static_argnums=(0, 1)
)


def random_obs(key, k: int, j: int, f: int = 2) -> Obs:
    groups = jax.random.normal(key, (k, j, f))
    return Obs(groups, jnp.ones((k, j)))


def exact_gp(kernel, p, train: Obs, r, test: Obs):
    """Exact GP regression in float64 on observations that are sums over groups of sites."""

    def cov(a: Obs, b: Obs):
        fa, fb = (np.asarray(o.groups, float).reshape(-1, o.groups.shape[-1]) for o in (a, b))
        k = np.asarray(gp.kernel_matrix(kernel, p, jnp.asarray(fa), jnp.asarray(fb)), float)
        k = k.reshape(*a.groups.shape[:2], *b.groups.shape[:2])
        return np.einsum("ij,ijkl,kl->ik", np.asarray(a.weights), k, np.asarray(b.weights))

    noise = float(jnp.exp(p.log_noise))
    kff = cov(train, train) + noise * np.eye(r.shape[0])
    ksf, kss = cov(test, train), cov(test, test)
    sol = np.linalg.solve(kff, np.c_[np.asarray(r, float), ksf.T])
    _, logdet = np.linalg.slogdet(kff)
    log_ml = -0.5 * (r @ sol[:, 0] + logdet + r.shape[0] * np.log(2 * np.pi))
    return log_ml, ksf @ sol[:, 0], kss - ksf @ sol[:, 1:]


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["rbf", "matern32"])
@pytest.mark.parametrize("sites", [1, 3])
def test_sparse_gp_with_inducing_inputs_at_the_data_is_the_exact_gp(kernel, sites):
    """With Z = every training site, Titsias' bound is the log marginal likelihood and the
    predictions are the exact GP's, for fields (one site) and energies (sums over sites)."""
    train = random_obs(jax.random.key(0), 12, sites)
    test = random_obs(jax.random.key(1), 4, sites)
    r = np.asarray(jax.random.normal(jax.random.key(2), (12,)), float)
    z = train.groups.reshape(-1, 2)
    p = GPParams(jnp.log(jnp.array([1.3, 0.8])), jnp.log(1.5), jnp.log(0.2), z)
    bound, post = collapsed(kernel, p, train, jnp.asarray(r, jnp.float32))
    post = gp._invert(post)
    log_ml, mean, cov = exact_gp(kernel, p, train, r, test)
    assert float(bound) * 12 == pytest.approx(log_ml, abs=0.05)
    m, v = predict(kernel, p, post, test)
    np.testing.assert_allclose(m, mean, atol=2e-2)
    np.testing.assert_allclose(v, np.diag(cov), atol=2e-2)
    # a difference f(b) - f(a) is one observation with weights -1, +1
    delta = Obs(
        jnp.concatenate([test.groups[:1], test.groups[1:2]], 1),
        jnp.array([[-1.0] * sites + [1.0] * sites]),
    )
    _, dv = predict(kernel, p, post, delta)
    np.testing.assert_allclose(dv[0], cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], atol=2e-2)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["rbf", "matern12", "matern52"])
def test_pathwise_draws_have_the_posterior_covariance(kernel):
    """Draws (random Fourier features + pathwise update, the default feature count) against
    the analytic posterior: the variance of single points and of the difference of two nearby
    points."""
    train = random_obs(jax.random.key(3), 30, 1)
    r = jnp.sin(2 * train.groups[:, 0, 0])
    p = GPParams(jnp.zeros(2), jnp.asarray(0.0), jnp.log(0.05), train.groups[::3, 0])
    post = gp._invert(collapsed(kernel, p, train, r)[1])
    pts = jnp.array([[0.0, 0.0], [0.1, 0.05], [3.0, -2.0]])[:, None, :]
    test = Obs(pts, jnp.ones((3, 1)))
    keys = jax.random.split(jax.random.key(4), 3000)
    draws = np.asarray(draws_fn(kernel, DEFAULT_RFF, p, post, test, keys))
    mean, var = predict(kernel, p, post, test)
    pair = Obs(pts[:2].reshape(1, 2, 2), jnp.array([[-1.0, 1.0]]))
    _, dvar = predict(kernel, p, post, pair)
    checks = [(draws[:, i], float(mean[i]), float(var[i])) for i in range(3)]
    checks.append((draws[:, 1] - draws[:, 0], float(mean[1] - mean[0]), float(dvar[0])))
    for values, m, v in checks:
        mean_z = abs(values.mean() - m) / _arviz.mcse(values[None])
        dev2 = ((values - m) ** 2)[None]
        assert mean_z < 4 and abs(dev2.mean() - v) / _arviz.mcse(dev2) < 4, kernel
    if kernel != "matern12":  # the exponential kernel's functions are rough
        assert float(dvar[0]) < 0.1 * float(var[0] + var[1])
    assert float(var[2]) > 0.9  # far from the data: the prior variance


def test_fast_cosine_and_sine_are_accurate_over_a_wide_range():
    """One range reduction for both; float32 inputs up to |x| = 1e4 (float64 reference)."""
    k1, k2 = jax.random.split(jax.random.key(0))
    x = jnp.concatenate([
        jnp.linspace(-7.0, 7.0, 10001),
        300.0 * jax.random.normal(k1, (10000,)),
        jax.random.uniform(k2, (10000,), minval=-1e4, maxval=1e4),
    ])  # fmt: skip
    xd = np.asarray(x, float)
    cos, sin = (np.asarray(v, float) for v in jax.jit(rff._cos_sin)(x))
    assert np.abs(cos - np.cos(xd)).max() < 1e-6
    assert np.abs(sin - np.sin(xd)).max() < 1e-6


@pytest.fixture(scope="module")
def fitted_1d():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, size=60)
    y = np.sin(x) + 0.05 * rng.normal(size=60)
    dkr = DeepKernelRegression(MLP, {"in_features": 1, "hidden": [16, 16]}, num_inducing=16)
    dkr.fit(x[:, None], y, key=0, gp_steps=300, epochs=100, batch_size=16, progress=False)
    return dkr, x, y


@pytest.mark.slow
def test_fit_raises_the_bound_and_finds_the_noise(fitted_1d):
    dkr, x, y = fitted_1d
    bound = dkr.history["gp_bound"]
    assert bound[-1] > bound[0] and dkr.history["gp_subset"] == 60
    assert 0.02**2 < dkr.noise_var < 0.15**2
    mean, var = dkr.predict_mean_var(x[:, None])
    assert float(jnp.sqrt(jnp.mean((mean - y) ** 2))) < 0.15
    _, epi = dkr.predict_mean_var(x[:, None], epistemic_only=True)
    np.testing.assert_allclose(var - epi, dkr.noise_var, rtol=1e-4)


@pytest.mark.slow
def test_joint_draws_of_a_fitted_backend_match_its_variances_and_are_near_gaussian(fitted_1d):
    """``predict_draws`` at the default feature count: pointwise mean and variance against
    ``predict_mean_var(epistemic_only=True)``, differences of nearby points against
    ``predict_delta_mean_var`` (|z| < 4 with MCSE). Each draw's prior part is a sum over
    random frequencies, so a draw is only near-Gaussian; the excess kurtosis is largest
    outside the data (x = 4, data in [-3, 3]), where the posterior keeps only the high
    frequencies of the prior: measured +0.47 / +0.24 / +0.15 / +0.11 with 256 / 512 / 768 /
    1024 features (sin/cos pairs). Bound it by 0.3 (standard error about 0.04 here)."""
    dkr = fitted_1d[0]
    assert dkr.rff_features == DEFAULT_RFF
    x = jnp.array([-2.5, -1.0, 0.3, 2.0, 4.0])[:, None]
    x_new = x + 0.05
    draws = np.asarray(dkr.predict_draws(jax.random.key(7), jnp.concatenate([x, x_new]), 20000))
    mean, var = dkr.predict_mean_var(jnp.concatenate([x, x_new]), epistemic_only=True)
    dmean, dvar = dkr.predict_delta_mean_var(x, x_new)
    diffs = draws[:, 5:] - draws[:, :5]
    checks = [(draws[:, i], mean[i], var[i]) for i in range(10)]
    checks += [(diffs[:, i], dmean[i], dvar[i]) for i in range(5)]
    for values, m, v in checks:
        values, m, v = values.astype(float), float(m), float(v)
        dev2 = ((values - m) ** 2)[None]
        assert abs(values.mean() - m) / _arviz.mcse(values[None]) < 4
        assert abs(dev2.mean() - v) / _arviz.mcse(dev2) < 4
    far = (diffs[:, 4] - diffs[:, 4].mean()) / diffs[:, 4].std()
    assert abs(np.mean(far**4) - 3.0) < 0.3


def test_save_load_predicts_identically(tmp_path, fitted_1d):
    dkr = fitted_1d[0]
    dkr.save(tmp_path / "dkr")
    back = DeepKernelRegression.load(tmp_path / "dkr")
    x = jnp.linspace(-5, 5, 11)[:, None]
    for a, b in zip(dkr.predict_mean_var(x), back.predict_mean_var(x), strict=True):
        np.testing.assert_array_equal(a, b)
    key = jax.random.key(2)
    np.testing.assert_array_equal(dkr.predict_draws(key, x, 3), back.predict_draws(key, x, 3))
    assert back.kernel == dkr.kernel and back.noise_var == dkr.noise_var


@pytest.mark.slow
@pytest.mark.parametrize("net_cls", [RCNN, EnergyNet])
def test_lattice_outputs(tmp_path, net_cls):
    """Fields: every site a data point (a stated subset fits the hyperparameters); energies:
    sums over sites. Shapes, any lattice size at inference, a shared trained network."""
    from uqmcmc.uq.training import train

    target = Phi4(L=4, beta=0.7, g=1.0)
    phi = 0.8 * jax.random.normal(jax.random.key(0), (24, 4, 4))
    y = target.grad(phi) if net_cls is RCNN else target.action(phi)
    kwargs = {"channels": 4, "depth": 1, "kernel_size": 1}
    net, _ = train(net_cls(**kwargs, rngs=nnx.Rngs(0)), phi, y, key=0,
                   epochs=5, progress=False)  # fmt: skip
    dkr = DeepKernelRegression(net_cls, kwargs, kernel="matern52", num_inducing=16)
    dkr.fit(phi, y, key=1, model=net, gp_steps=50, max_points=100)
    assert dkr.history["gp_subset"] == (100 if net_cls is RCNN else 24)
    out = (3, 4, 4) if net_cls is RCNN else (3,)
    mean, var = dkr.predict_mean_var(phi[:3])
    assert mean.shape == var.shape == out and bool(jnp.all(var > 0))
    assert dkr.predict_draws(jax.random.key(1), phi[:3], 2).shape == (2, *out)
    big = jnp.zeros((2, 6, 6))
    assert dkr.predict_mean_var(big)[0].shape == ((2, 6, 6) if net_cls is RCNN else (2,))
    _, dvar = dkr.predict_delta_mean_var(phi[:3], phi[:3] + 0.01)
    assert dvar.shape == out and bool(jnp.all(dvar < var))
    dkr.save(tmp_path / "d")
    back = DeepKernelRegression.load(tmp_path / "d")
    np.testing.assert_array_equal(back.predict_mean_var(phi[:3])[0], mean)


class IdentityFeatures(nnx.Module):
    """A user's own network following the convention: the features are the inputs."""

    reduce = "none"
    site_axes = 0

    def __init__(self, *, rngs: nnx.Rngs):
        self.readout = nnx.Linear(2, 1, rngs=rngs)

    def features(self, x):
        return x

    def __call__(self, x):
        return self.readout(self.features(x))[..., 0]


@pytest.mark.slow
def test_a_users_own_network_makes_a_plain_sparse_gp(tmp_path):
    x = jax.random.uniform(jax.random.key(0), (50, 2), minval=-2, maxval=2)
    y = jnp.sin(x[:, 0]) * jnp.cos(x[:, 1])
    dkr = DeepKernelRegression(IdentityFeatures, num_inducing=20)
    dkr.fit(x, y, key=0, model=IdentityFeatures(rngs=nnx.Rngs(0)), gp_steps=300)
    mean, var = dkr.predict_mean_var(x)
    assert float(jnp.sqrt(jnp.mean((mean - y) ** 2))) < 0.05
    _, far = dkr.predict_mean_var(jnp.array([[8.0, 8.0]]), epistemic_only=True)
    prior = float(jnp.exp(dkr.params.log_signal)) * dkr.y_scale**2
    assert float(far[0]) == pytest.approx(prior, rel=1e-3)  # far from the data: the prior
    dkr.save(tmp_path / "u")
    with pytest.raises(ValueError, match="model_cls"):
        DeepKernelRegression.load(tmp_path / "u")
    back = DeepKernelRegression.load(tmp_path / "u", model_cls=IdentityFeatures)
    np.testing.assert_array_equal(back.predict_mean_var(x)[1], var)


def test_bad_arguments_are_named(fitted_1d):
    x = jnp.zeros((5, 1))
    with pytest.raises(ValueError, match="kernel"):
        DeepKernelRegression(MLP, {"in_features": 1}, kernel="cubic")
    with pytest.raises(ValueError, match="not fitted"):
        DeepKernelRegression(MLP, {"in_features": 1}).predict_mean_var(x)
    dkr = DeepKernelRegression(MLP, {"in_features": 1, "hidden": [4]})
    with pytest.raises(ValueError, match="model must be a MLP"):
        dkr.fit(x, jnp.zeros(5), key=0, model=RCNN(rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="make no sense"):
        dkr.fit(x, jnp.zeros(5), key=0, model=fitted_1d[0].model, epochs=3)
    with pytest.raises(ValueError, match="mse"):
        dkr.fit(x, jnp.zeros(5), key=0, loss="gaussian_nll")
    with pytest.raises(ValueError, match="y must have shape"):
        dkr.fit(x, jnp.zeros((5, 2)), key=0, model=fitted_1d[0].model)
    with pytest.raises(ValueError, match="num_inducing"):
        DeepKernelRegression(MLP, {"in_features": 1}, num_inducing=0)
