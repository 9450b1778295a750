"""Cross-backend 1-D regression with a gap in the training inputs.

Every backend's epistemic variance must be larger in the gap and outside the data than inside;
after sigma-scaling on held-out data every backend's in-distribution 90% coverage must lie in
[0.8, 0.97]; the joint draws of the BNN and the deep kernel keep the covariance of nearby points.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from uqmcmc import _arviz
from uqmcmc.nets import MLP
from uqmcmc.uq import calibration
from uqmcmc.uq.bnn import NumPyroBNN
from uqmcmc.uq.deep_kernel import DeepKernelRegression
from uqmcmc.uq.dropout import MCDropout
from uqmcmc.uq.ensemble import DeepEnsemble
from uqmcmc.uq.last_layer import BayesianLastLayer
from uqmcmc.uq.training import cosine_adam, train

NOISE = 0.1
WIDTHS = {"in_features": 1, "hidden": [32, 32]}
GRIDS = {
    "inside": np.r_[np.linspace(-3.75, -1.75, 20), np.linspace(1.75, 3.75, 20)],
    "gap": np.linspace(-0.75, 0.75, 20),
    "outside": np.r_[np.linspace(-6.5, -5.0, 10), np.linspace(5.0, 6.5, 10)],
}


def gap_data(seed: int, n: int):
    """``y = sin x + noise`` with ``|x|`` uniform in [1.5, 4]: no data in (-1.5, 1.5)."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=n) * rng.uniform(1.5, 4.0, size=n)
    y = np.sin(x) + NOISE * rng.normal(size=n)
    return jnp.asarray(x[:, None], jnp.float32), jnp.asarray(y, jnp.float32)


@pytest.fixture(scope="module")
def backends():
    x, y = gap_data(0, 80)
    fit_kw = {"epochs": 300, "batch_size": 16, "optimizer": cosine_adam(1e-2), "progress": False}
    net, _ = train(MLP(**WIDTHS, rngs=nnx.Rngs(0)), x, y, key=1, **fit_kw)
    return {
        "ensemble": DeepEnsemble(MLP, WIDTHS, n_members=10).fit(x, y, key=2, **fit_kw),
        "mc_dropout": MCDropout(MLP, {**WIDTHS, "dropout": 0.1}).fit(x, y, key=3, **fit_kw),
        "last_layer": BayesianLastLayer(MLP, WIDTHS).fit(x, y, key=4, model=net),
        "deep_kernel": DeepKernelRegression(MLP, WIDTHS, num_inducing=32, rff_features=256).fit(
            x, y, key=5, model=net, gp_steps=500
        ),
        "bnn": NumPyroBNN(MLP, {"in_features": 1, "hidden": [10]}).fit(
            x, y, key=6, num_warmup=200, num_samples=100, num_chains=4
        ),
    }


def epistemic_var(backend, region: str) -> float:
    _, var = backend.predict_mean_var(GRIDS[region][:, None], epistemic_only=True)
    return float(jnp.mean(var))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ensemble", "last_layer", "bnn", "deep_kernel"])
def test_variance_is_larger_in_the_gap_and_outside_the_data(backends, name):
    inside = epistemic_var(backends[name], "inside")
    for region in ("gap", "outside"):
        ratio = epistemic_var(backends[name], region) / inside
        assert ratio > 3, f"{name}: {region}/inside variance ratio {ratio:.3g}"


@pytest.mark.parametrize("name", ["ensemble", "mc_dropout", "last_layer", "bnn", "deep_kernel"])
def test_recalibrated_in_distribution_coverage(backends, name):
    x_cal, y_cal = gap_data(1, 500)
    x_test, y_test = gap_data(2, 500)
    fixed = calibration.recalibrate(backends[name], x_cal, y_cal)
    coverage = calibration.metrics(fixed, x_test, y_test)["coverage_90"]
    assert 0.8 <= coverage <= 0.97, f"{name}: coverage {coverage:.3f} (scale {fixed.scale:.3g})"


@pytest.mark.parametrize("name", ["bnn", "deep_kernel"])
def test_joint_draws_keep_the_covariance_of_nearby_points(backends, name):
    """Var of f(x') - f(x) from joint draws matches the backend's own (MCSE test) and is far
    below var(x) + var(x') for nearby points, in the data, in the gap and outside."""
    backend = backends[name]
    x = jnp.array([[2.5], [0.0], [5.5]])
    x_new = x + 0.05
    draws = np.asarray(backend.predict_draws(jax.random.key(7), jnp.concatenate([x, x_new]), 2000))
    diff = draws[:, 3:] - draws[:, :3]
    dmean, own = backend.predict_delta_mean_var(x, x_new)
    _, var = backend.predict_mean_var(x, epistemic_only=True)
    _, var_new = backend.predict_mean_var(x_new, epistemic_only=True)
    for i in range(3):
        dev2 = ((diff[:, i] - float(dmean[i])) ** 2)[None]
        assert abs(dev2.mean() - float(own[i])) / _arviz.mcse(dev2) < 4, (name, i)
        assert float(own[i]) < 0.1 * float(var[i] + var_new[i]), (name, i)
