"""NumPyroBNN: exact Bayesian linear regression as a known answer (NUTS and SVI), joint draws,
field and energy outputs, ArviZ diagnostics, save/load."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from uqmcmc import _arviz
from uqmcmc.nets import MLP, RCNN, EnergyNet
from uqmcmc.targets import Phi4
from uqmcmc.uq.bnn import NumPyroBNN
from uqmcmc.uq.flat import flat_params

NOISE = 0.5


class LinearNet(nnx.Module):
    """A user's own network following the convention: identity features, linear readout."""

    reduce = "none"
    site_axes = 0

    def __init__(self, *, rngs: nnx.Rngs):
        self.readout = nnx.Linear(1, 1, rngs=rngs)

    def features(self, x):
        return x

    def __call__(self, x):
        return self.readout(self.features(x))[..., 0]


def linear_data(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=n)
    x = x - x.mean()  # centred: the exact posterior of (w, b) is uncorrelated
    y = 3.0 * x + 2.0 + NOISE * rng.normal(size=n)  # label scale far from 1
    return jnp.asarray(x[:, None], jnp.float32), jnp.asarray(y, jnp.float32)


def exact_posterior(bnn: NumPyroBNN, x, y):
    """Posterior mean and covariance of (kernel, bias) in the BNN's standardised units."""
    x, y = np.asarray(x, float)[:, 0], np.asarray(y, float)
    ys = (y - bnn.y_loc) / bnn.y_scale
    s2 = (NOISE / bnn.y_scale) ** 2
    phi = np.c_[x, np.ones_like(x)]
    prec = np.eye(2) / bnn.prior_scale**2 + phi.T @ phi / s2
    cov = np.linalg.inv(prec)
    return cov @ phi.T @ ys / s2, cov


def leaves(bnn: NumPyroBNN) -> dict[str, np.ndarray]:
    """Stored draws (chain, draw) of the kernel and the bias."""
    split = bnn.layout.split(bnn.weights)
    return {"kernel": split["readout/kernel"][..., 0, 0], "bias": split["readout/bias"][..., 0]}


@pytest.fixture(scope="module")
def linear_nuts():
    x, y = linear_data()
    bnn = NumPyroBNN(LinearNet, noise=NOISE)
    bnn.fit(x, y, key=jax.random.key(0), num_warmup=300, num_samples=1000, num_chains=4)
    return bnn, x, y


@pytest.mark.slow
def test_nuts_matches_exact_bayesian_linear_regression(linear_nuts):
    bnn, x, y = linear_nuts
    assert bnn.method == "nuts" and bnn.weights.shape == (4, 1000, 2)
    mean, cov = exact_posterior(bnn, x, y)
    for i, name in enumerate(("kernel", "bias")):
        draws = leaves(bnn)[name]
        assert abs(draws.mean() - mean[i]) / _arviz.mcse(draws) < 4, name
        dev2 = (draws - mean[i]) ** 2
        assert abs(dev2.mean() - cov[i, i]) / _arviz.mcse(dev2) < 4, name
    # the predictive mean at a new input, in label units, against its MCSE over chains
    xs = jnp.array([[1.5]])
    f = _arviz.group(bnn.inference_data(xs), "posterior")["f"].values[..., 0]
    truth = bnn.y_loc + bnn.y_scale * (mean[0] * 1.5 + mean[1])
    pred, var = bnn.predict_mean_var(xs)
    assert float(pred[0]) == pytest.approx(f.mean(), rel=1e-5)
    assert abs(f.mean() - truth) / _arviz.mcse(f) < 4
    # noise is fixed, so the predictive variance is the epistemic one plus NOISE^2
    _, epi = bnn.predict_mean_var(xs, epistemic_only=True)
    assert float(var[0] - epi[0]) == pytest.approx(NOISE**2, rel=1e-5)
    assert bnn.noise_var == pytest.approx(NOISE**2, rel=1e-5)


def test_inference_data_has_weights_predictions_and_sampler_stats(linear_nuts):
    bnn, x, _ = linear_nuts
    idata = bnn.inference_data(x[:3])
    post = _arviz.group(idata, "posterior")
    assert set(post.data_vars) == {"readout.bias", "readout.kernel", "sigma", "f"}
    assert post["readout.kernel"].shape == (4, 1000, 1, 1) and post["f"].shape == (4, 1000, 3)
    stats = _arviz.group(idata, "sample_stats")
    assert {"diverging", "num_steps", "accept_prob"} <= set(stats.data_vars)
    assert _arviz.rhat(post["readout.kernel"].values[..., 0, 0]) < 1.05
    assert _arviz.attrs(idata)["method"] == "nuts"


def test_svi_matches_the_exact_mean_field_posterior():
    """Centred inputs make the exact posterior a product of Gaussians: AutoNormal is exact."""
    x, y = linear_data(seed=2)
    bnn = NumPyroBNN(LinearNet, noise=NOISE)
    bnn.fit(x, y, key=2, method="svi", svi_steps=4000, learning_rate=5e-3, num_samples=4000)
    assert bnn.method == "svi" and bnn.weights.shape == (1, 4000, 2)
    mean, cov = exact_posterior(bnn, x, y)
    for i, name in enumerate(("kernel", "bias")):
        draws = leaves(bnn)[name]
        sd = np.sqrt(cov[i, i])
        assert abs(draws.mean() - mean[i]) < 0.15 * sd, name
        assert draws.std() == pytest.approx(sd, rel=0.15), name
    assert bnn.extra["elbo_loss"].shape == (4000,)


def test_save_load_predicts_identically(tmp_path, linear_nuts):
    bnn = linear_nuts[0]
    bnn.save(tmp_path / "lin")
    # a user's own class must be named on load (never imported from a name in the file)
    with pytest.raises(ValueError, match="model_cls"):
        NumPyroBNN.load(tmp_path / "lin")
    back = NumPyroBNN.load(tmp_path / "lin", model_cls=LinearNet)
    x = jnp.linspace(-4, 4, 9)[:, None]
    for a, b in zip(bnn.predict_mean_var(x), back.predict_mean_var(x), strict=True):
        np.testing.assert_array_equal(a, b)
    key = jax.random.key(7)
    np.testing.assert_array_equal(bnn.predict_draws(key, x, 5), back.predict_draws(key, x, 5))
    assert back.method == "nuts" and back.extra.keys() == bnn.extra.keys()
    assert back.noise == NOISE and back.weights.shape == bnn.weights.shape
    with pytest.raises(ValueError, match="NumPyroBNN"):
        from uqmcmc.uq.deep_kernel import DeepKernelRegression

        DeepKernelRegression.load(tmp_path / "lin")


@pytest.mark.slow
@pytest.mark.parametrize("net_cls", [RCNN, EnergyNet])
def test_lattice_outputs_with_svi(tmp_path, net_cls):
    target = Phi4(L=4, beta=0.7, g=1.0)
    phi = 0.8 * jax.random.normal(jax.random.key(0), (16, 4, 4))
    y = target.grad(phi) if net_cls is RCNN else target.action(phi)
    bnn = NumPyroBNN(net_cls, {"channels": 4, "depth": 1, "kernel_size": 1})
    bnn.fit(phi, y, key=0, method="svi", svi_steps=300, num_samples=50)
    out = (3, 4, 4) if net_cls is RCNN else (3,)
    mean, var = bnn.predict_mean_var(phi[:3])
    assert mean.shape == var.shape == out and bool(jnp.all(var > 0))
    assert bnn.predict_draws(jax.random.key(1), phi[:3], 2).shape == (2, *out)
    big = bnn.predict_mean_var(jnp.zeros((2, 6, 6)))[0]  # any lattice size at inference
    assert big.shape == ((2, 6, 6) if net_cls is RCNN else (2,))
    bnn.save(tmp_path / "b")
    back = NumPyroBNN.load(tmp_path / "b")
    np.testing.assert_array_equal(back.predict_mean_var(phi[:3])[0], mean)


def test_flat_params_roundtrip_and_prior_scales():
    net = MLP(3, (5,), rngs=nnx.Rngs(0))
    fp = flat_params(net)
    assert fp.layout.size == 3 * 5 + 5 + 5 + 1
    x = jnp.ones((2, 3))
    np.testing.assert_allclose(fp.apply(fp.vector, x), net(x), rtol=1e-6)
    scales = dict(
        zip(fp.layout.names, np.split(fp.layout.fan_in_scales(2.0), [5, 20, 21]), strict=True)
    )
    np.testing.assert_allclose(scales["layers/0/kernel"], 2.0 / np.sqrt(3))
    np.testing.assert_allclose(scales["readout/kernel"], 2.0 / np.sqrt(5))
    np.testing.assert_allclose(scales["layers/0/bias"], 2.0)


def test_bad_arguments_are_named():
    x, y = linear_data(10)
    bnn = NumPyroBNN(LinearNet)
    with pytest.raises(ValueError, match="not fitted"):
        bnn.predict_mean_var(x)
    with pytest.raises(ValueError, match="method"):
        bnn.fit(x, y, key=0, method="hmc")
    with pytest.raises(ValueError, match="y must have shape"):
        bnn.fit(x, y[:, None], key=0)
    with pytest.raises(ValueError, match="equal length"):
        bnn.fit(x, y[:5], key=0)
    with pytest.raises(ValueError, match="prior_scale"):
        NumPyroBNN(LinearNet, prior_scale=0.0)
    with pytest.raises(ValueError, match="noise"):
        NumPyroBNN(LinearNet, noise=-1.0)
