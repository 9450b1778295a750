"""Rejected corrections against predicted variance: a positive control (a surrogate wrong where
it says it is unsure is flagged), negative controls (variance that says nothing, or is high
where the surrogate is right, is not), the bootstrap's false-alarm rate, and refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _standins import sample

from uqmcmc.diagnostics import rejections_by_variance
from uqmcmc.mcmc import GradientDelta
from uqmcmc.mcmc.delayed_acceptance import as_top_level_api as delayed_acceptance
from uqmcmc.mcmc.estimators import standard_normal
from uqmcmc.targets import Gaussian

GAUSS = Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.6], [0.6, 2.0]]))
FLAW = jnp.array([1.5, -1.0])  # where the surrogate's gradient is wrong


class RegionalBackend:
    """The exact gradient plus an error near ``FLAW``; predicted variance high near ``unsure``."""

    def __init__(self, unsure):
        self.unsure = jnp.asarray(unsure)

    @staticmethod
    def _bump(x, centre):
        return jnp.exp(-jnp.sum((x - centre) ** 2, axis=-1) / (2 * 0.5**2))

    def predict_mean_var(self, x):
        error = 3.0 * self._bump(x, FLAW)[..., None] * jnp.array([1.0, 1.0])
        sd = 0.05 + 2.0 * self._bump(x, self.unsure)[..., None]
        return jax.vmap(GAUSS.grad)(x.reshape(-1, 2)).reshape(x.shape) + error, jnp.broadcast_to(
            sd**2, x.shape
        )

    def predict_draws(self, key, x, n):  # not used: delayed acceptance takes the mean
        mean, var = self.predict_mean_var(x)
        return mean + jnp.sqrt(var) * jax.random.normal(key, (n, *mean.shape))

    def predict_linear(self, x, weights):
        mean, var = self.predict_mean_var(x)
        return mean, jnp.sum(weights**2 * var)


def da_stats(unsure):
    est = GradientDelta(RegionalBackend(unsure), rule="simpson", mode="mean")
    alg = delayed_acceptance(GAUSS, est, 0.5)
    x0 = GAUSS.moments()["mean"] + standard_normal(jax.random.key(5), (32, 2))
    _, info = sample(alg, jax.random.key(6), jnp.asarray(x0), 1500, lambda x: x, warmup=100)
    return rejections_by_variance(
        np.asarray(info.delta_var), np.asarray(info.correction_acceptance),
        np.asarray(info.exact_evaluations) > 0,
    )  # fmt: skip


@pytest.mark.slow
def test_positive_control_rejections_where_the_surrogate_is_wrong_and_unsure():
    r = da_stats(unsure=FLAW)
    assert r.informative and r.top_share > 0.5, r
    assert r.table["rejection"].iloc[-1] > 3 * r.table["rejection"].iloc[0]


@pytest.mark.slow
def test_negative_control_unsure_where_the_surrogate_is_right():
    r = da_stats(unsure=jnp.array([-0.5, -2.5]))  # the flaw is elsewhere
    assert not r.informative, r
    assert r.top_share < r.null_share + 2 * r.top_share_se


def test_uninformative_variance_alarms_at_about_the_nominal_rate():
    # one-sided 2.5 % test: over 40 independent data sets, more than 5 alarms is P < 0.001
    alarms, z = 0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        var = rng.exponential(size=(4, 1000))
        acc = 1 - rng.beta(0.2, 8.0, size=var.shape)  # heavy-ish, independent of var
        r = rejections_by_variance(var, acc, rng.random(var.shape) < 0.6, n_boot=200, rng=seed)
        alarms += r.informative
        z.append((r.top_share - r.null_share) / r.top_share_se)
    assert alarms <= 5, alarms
    assert 0.6 < np.std(z) < 1.5, np.std(z)  # the bootstrap error is the right size


def test_informative_variance_is_detected_with_its_stated_power():
    rng = np.random.default_rng(0)
    var = rng.exponential(size=(4, 2000))
    acc = 1 - np.clip(0.01 * var, 0, 1)
    r = rejections_by_variance(var, acc, np.ones(var.shape, bool))
    assert r.informative and r.top_share > r.detectable
    assert r.table["n"].sum() == var.size and len(r.table) == 5


@pytest.mark.parametrize(
    "shapes, bins, error",
    [
        (((2, 10), (2, 9), (2, 10)), 5, "one"),
        (((2, 3), (2, 3), (2, 3)), 5, "too few"),
        (((2, 50),) * 3, 1, "bins must be"),
    ],  # fmt: skip
)
def test_refusals(shapes, bins, error):
    arrays = [np.ones(s) for s in shapes]
    with pytest.raises(ValueError, match=error):
        rejections_by_variance(*arrays, bins=bins)
