"""Calibration metrics against known answers, sigma-scaling recalibration and its wrapper."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from uqmcmc import _arviz
from uqmcmc.uq import calibration
from uqmcmc.uq.calibration import Recalibrated, metrics, metrics_from_predictions, recalibrate


def gaussian_case(seed: int, n: int, inflate: float = 1.0, tails: str = "normal"):
    """Heteroscedastic predictions and labels ``y = mean + inflate * sqrt(var) * noise``."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=n)
    var = rng.uniform(0.1, 2.0, size=n)
    noise = rng.normal(size=n) if tails == "normal" else rng.standard_t(3, size=n) / np.sqrt(3)
    return mean, var, mean + inflate * np.sqrt(var) * noise


def binomial_z(observed: float, p: float, n: int) -> float:
    return abs(observed - p) / np.sqrt(p * (1 - p) / n)


class LinearDraws:
    """A toy backend ``f(x) = a x`` with ``a ~ N(1, 1)``: joint draws share ``a``."""

    def predict_mean_var(self, x, *, epistemic_only=False):
        x = jnp.asarray(x)[..., 0]
        return x, x**2

    def predict_draws(self, key, x, n):
        a = 1.0 + jax.random.normal(key, (n, 1))
        return a * jnp.asarray(x)[None, :, 0]

    def predict_delta_mean_var(self, x, x_new):
        d = jnp.asarray(x_new)[..., 0] - jnp.asarray(x)[..., 0]
        return d, d**2


def test_calibrated_predictions_match_the_gaussian_answers():
    n = 20_000
    m = metrics_from_predictions(*gaussian_case(0, n), n_qq=50)
    for level in (50, 90, 95):
        assert binomial_z(m[f"coverage_{level}"], level / 100, n) < 4
    assert abs(m["z_mean"]) / np.sqrt(1 / n) < 4
    assert abs(m["z_var"] - 1) / np.sqrt(2 / n) < 4
    assert abs(m["excess_kurtosis"]) / np.sqrt(24 / n) < 4
    assert m["normality_pvalue"] > 1e-4
    assert m["calibration_error"] < 1e-3 and m["miscalibration_area"] < 0.01
    assert m["qq_observed"].shape == m["qq_theoretical"].shape == (50,)
    assert np.all(np.diff(m["qq_observed"]) >= 0)
    np.testing.assert_allclose(m["qq_observed"], m["qq_theoretical"], atol=0.1)


def test_overconfident_predictions_match_the_known_miscalibration():
    """Labels twice as spread as predicted: every statistic has a closed form."""
    n = 20_000
    mean, var, y = gaussian_case(1, n, inflate=2.0)
    m = metrics_from_predictions(mean, var, y)
    for level in (50, 90, 95):
        truth = 2 * sps.norm.cdf(sps.norm.ppf(0.5 + level / 200) / 2) - 1
        assert binomial_z(m[f"coverage_{level}"], truth, n) < 4
    levels = np.linspace(0.01, 0.99, 99)
    curve = sps.norm.cdf(sps.norm.ppf(levels) / 2)
    assert m["miscalibration_area"] == pytest.approx(np.mean(np.abs(curve - levels)), abs=0.01)
    assert m["calibration_error"] == pytest.approx(np.mean((curve - levels) ** 2), rel=0.1)
    assert abs(m["z_var"] - 4) / np.sqrt(2 * 16 / n) < 4
    nll = np.mean(0.5 * np.log(2 * np.pi * var) + 0.5 * (y - mean) ** 2 / var)
    assert m["nll"] == pytest.approx(nll, rel=1e-6)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((y - mean) ** 2)), rel=1e-6)
    assert m["sharpness"] == pytest.approx(np.sqrt(np.mean(var)), rel=1e-6)


def test_heavy_tails_are_flagged():
    m = metrics_from_predictions(*gaussian_case(2, 20_000, tails="t3"))
    assert m["excess_kurtosis"] > 2
    assert m["normality_pvalue"] < 1e-6


def test_recalibration_recovers_the_scale_and_the_coverage():
    n = 20_000
    mean, var, y = gaussian_case(3, 2 * n, inflate=2.0)
    held, test = slice(0, n), slice(n, None)

    class Arrays:  # predictions looked up by index
        def predict_mean_var(self, idx):
            return jnp.asarray(mean[idx]), jnp.asarray(var[idx])

        def predict_draws(self, key, idx, n):
            return jnp.asarray(mean[idx]) + jnp.sqrt(jnp.asarray(var[idx])) * jax.random.normal(
                key, (n, idx.size)
            )

    idx = np.arange(2 * n)
    fixed = recalibrate(Arrays(), idx[held], y[held])
    z2 = ((y[held] - mean[held]) ** 2 / var[held]).reshape(1, -1)
    assert abs(fixed.scale - 4) / _arviz.mcse(z2) < 4
    after = metrics(fixed, idx[test], y[test])
    assert binomial_z(after["coverage_90"], 0.9, n) < 4
    assert abs(after["z_var"] - 1) / np.sqrt(2 / n) < 4


def test_recalibrated_draws_and_deltas_are_scaled_jointly():
    backend = Recalibrated(LinearDraws(), 4.0)
    x = jnp.array([[1.0], [1.1], [-2.0]])
    mean, var = backend.predict_mean_var(x)
    np.testing.assert_allclose(var, 4 * x[:, 0] ** 2, rtol=1e-6)
    draws = np.asarray(backend.predict_draws(jax.random.key(0), x, 4000))
    for i in range(3):
        dev2 = ((draws[:, i] - mean[i]) ** 2)[None]
        assert abs(dev2.mean() - var[i]) / _arviz.mcse(dev2) < 4
    # joint: the difference of nearby points keeps its small variance
    diff = draws[:, 1] - draws[:, 0]
    _, dvar = backend.predict_delta_mean_var(x[:1], x[1:2])
    dev2 = ((diff - diff.mean()) ** 2)[None]
    assert abs(dev2.mean() - float(dvar[0])) / _arviz.mcse(dev2) < 4
    assert float(dvar[0]) < 0.01 * float(var[0] + var[1])


@pytest.mark.slow
def test_recalibrated_save_load_roundtrip(tmp_path):
    from uqmcmc.nets import MLP
    from uqmcmc.uq.last_layer import BayesianLastLayer

    x = jnp.linspace(-1, 1, 32)[:, None]
    y = jnp.sin(3 * x[:, 0])
    bll = BayesianLastLayer(MLP, {"in_features": 1, "hidden": [8]})
    bll = bll.fit(x, y, key=0, epochs=5, progress=False)
    wrapped = Recalibrated(bll, 2.5)
    wrapped.save(tmp_path / "rc")
    back = Recalibrated.load(tmp_path / "rc")
    assert back.scale == 2.5 and type(back.backend) is BayesianLastLayer
    for a, b in zip(wrapped.predict_mean_var(x), back.predict_mean_var(x), strict=True):
        np.testing.assert_array_equal(a, b)
    key = jax.random.key(3)
    np.testing.assert_array_equal(wrapped.predict_draws(key, x, 4), back.predict_draws(key, x, 4))
    with pytest.raises(ValueError, match="uqmcmc backend"):
        Recalibrated(LinearDraws(), 2.0).save(tmp_path / "toy")
    with pytest.raises(ValueError, match="Recalibrated"):
        Recalibrated.load(tmp_path / "rc" / "inner")


def test_bad_inputs_are_named():
    mean, var, y = gaussian_case(4, 10)
    with pytest.raises(ValueError, match="one shape"):
        metrics_from_predictions(mean, var, y[:5])
    with pytest.raises(ValueError, match="var must be > 0"):
        metrics_from_predictions(mean, np.zeros(10), y)
    with pytest.raises(ValueError, match="y must be finite"):
        metrics_from_predictions(mean, var, np.full(10, np.nan))
    with pytest.raises(ValueError, match="n_qq"):
        metrics_from_predictions(mean, var, y, n_qq=1)
    with pytest.raises(ValueError, match="prediction's shape"):
        metrics(LinearDraws(), jnp.ones((3, 1)), jnp.ones(4))
    with pytest.raises(ValueError, match="scale"):
        Recalibrated(LinearDraws(), -1.0)
    small = metrics_from_predictions(mean, var, y)
    assert np.isnan(small["normality_pvalue"])  # too few points for the test
    assert calibration.COVERAGE_LEVELS == (0.5, 0.9, 0.95)
