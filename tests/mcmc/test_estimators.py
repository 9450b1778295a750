"""Delta S estimators: exactness of the quadrature, joint draws, variances, argument checks."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _standins import StandIn

from uqmcmc.mcmc import QUADRATURE, EnergyDelta, ExactDelta, GradientDelta, NoisyOracle
from uqmcmc.mcmc.estimators import standard_normal
from uqmcmc.targets import DoubleWell, Gaussian, Phi4

PHI4 = Phi4(L=4, beta=0.6, g=1.0)
GAUSS = Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.6], [0.6, 2.0]]))


def random_pairs(shape, n, key=0, scale=1.0):
    kx, kd = jax.random.split(jax.random.key(key))
    x = standard_normal(kx, (n, *shape))
    return x, x + scale * standard_normal(kd, (n, *shape))


def vmapped(est, x, x_new, keys, with_grad=False):
    """Estimates for a batch of pairs, one key each (call inside ``jit``)."""

    def one(k, a, b):
        return est.estimate(k, a, b, est.init(a, with_grad), with_grad)

    return jax.vmap(one)(keys, x, x_new)


def estimate_many(est, x, x_new, key=0, with_grad=False):
    keys = jax.random.split(jax.random.key(key), x.shape[0])
    return jax.jit(lambda *a: vmapped(est, *a, with_grad=with_grad))(x, x_new, keys)


# -- simpson is exact for quartic actions ------------------------------------------------------
@pytest.mark.parametrize("target", [Phi4(4, 0.6, 1.0), Phi4(6, 0.7, 1.3), DoubleWell(2, 1.0, 0.3)])
def test_simpson_with_exact_gradient_equals_exact_delta(target):
    backend = StandIn(target.grad, target.shape)
    estimators = {rule: GradientDelta(backend, rule=rule) for rule in QUADRATURE}
    # the noise-free oracle and draws mode integrate the same way
    estimators["oracle"] = NoisyOracle(target, 0.0, on="grad")
    estimators["draws"] = GradientDelta(backend, mode="draws", n_draws=2)

    @jax.jit
    def relative_errors(x, x_new, keys):
        s, s_new = jax.vmap(target.action)(x), jax.vmap(target.action)(x_new)
        scale = jnp.abs(s) + jnp.abs(s_new) + 1.0
        return {
            name: jnp.max(jnp.abs(vmapped(est, x, x_new, keys)[0].mean - (s_new - s)) / scale)
            for name, est in estimators.items()
        }

    x, x_new = random_pairs(target.shape, 256, scale=0.8)
    errors = relative_errors(x, x_new, jax.random.split(jax.random.key(1), 256))
    errors = {k: float(v) for k, v in errors.items()}
    # float32 round-off of the sums is ~1e-7 relative; the other rules miss by O(1e-2) or more
    for name in ("simpson", "oracle", "draws"):
        assert errors[name] < 2e-6, errors
    assert errors["trapezoid"] > 1e-3 and errors["first-order"] > 1e-3, errors


def test_exact_delta_and_caches():
    x, x_new = random_pairs(PHI4.shape, 8)
    est = ExactDelta(PHI4)
    d, new = estimate_many(est, x, x_new, with_grad=True)
    exact = jax.vmap(PHI4.action)(x_new) - jax.vmap(PHI4.action)(x)
    np.testing.assert_allclose(d.mean, exact, rtol=1e-6, atol=1e-5)
    assert np.all(d.var == 0) and np.all(d.finite)
    np.testing.assert_allclose(new.logdensity, -jax.vmap(PHI4.action)(x_new), rtol=1e-6)
    np.testing.assert_allclose(new.grad, PHI4.grad(x_new), rtol=1e-6)
    assert est.init(x[0]).grad is None  # RMH does not pay for a gradient


# -- noise: unbiased estimates and the variance they report ------------------------------------
def z_mean(values, truth):
    values = np.asarray(values, dtype=float)
    return (values.mean() - truth) / (values.std(ddof=1) / np.sqrt(values.size))


def z_var(values, var_truth):
    """z-score of the sample variance of Gaussian values against ``var_truth``."""
    values = np.asarray(values, dtype=float)
    return (values.var(ddof=1) - var_truth) / (var_truth * np.sqrt(2.0 / (values.size - 1)))


N_REP = 20000


def repeated(est, x, x_new, n=N_REP, with_grad=False):
    """``n`` estimates for the SAME pair with independent keys."""
    xs = jnp.broadcast_to(x, (n, *x.shape))
    xn = jnp.broadcast_to(x_new, (n, *x.shape))
    return estimate_many(est, xs, xn, key=7, with_grad=with_grad)[0]


@pytest.mark.parametrize("n_draws", [None, 10])
def test_noisy_oracle_on_delta(n_draws):
    x, x_new = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.4])
    truth = float(GAUSS.action(x_new) - GAUSS.action(x))
    d = repeated(NoisyOracle(GAUSS, 0.7, n_draws=n_draws), x, x_new)
    assert abs(z_mean(d.mean, truth)) < 4
    assert abs(z_var(d.mean, 0.49)) < 4
    if n_draws is None:
        np.testing.assert_allclose(d.var, 0.49, rtol=1e-6)
    else:  # the sample variance of the mean is unbiased for sigma^2
        assert abs(z_mean(d.var, 0.49)) < 4


@pytest.mark.parametrize("rule", list(QUADRATURE))
def test_noisy_oracle_on_grad(rule):
    x, x_new = random_pairs(PHI4.shape, 1, key=3, scale=0.2)
    x, x_new = x[0], x_new[0]
    quad = estimate_many(NoisyOracle(PHI4, 0.0, on="grad", rule=rule), x[None], x_new[None])[0]
    d = repeated(NoisyOracle(PHI4, 1.5, on="grad", rule=rule), x, x_new)
    weights = np.array(QUADRATURE[rule][1])
    known = 1.5**2 * np.sum(weights**2) * float(jnp.sum((x_new - x) ** 2))
    np.testing.assert_allclose(d.var, known, rtol=1e-5)
    assert abs(z_mean(d.mean, float(quad.mean[0]))) < 4
    assert abs(z_var(d.mean, known)) < 4


@pytest.mark.parametrize("mode", ["mean", "draws"])
def test_gradient_delta_variance(mode):
    """mean mode reports the epistemic variance of the whole quadrature sum (independent
    sites here: sigma^2 sum_j w_j^2 |delta|^2); draws mode the sample variance of the mean,
    and both describe the actual spread of a draws-mode estimate."""
    x, x_new = random_pairs(PHI4.shape, 1, key=4, scale=0.2)
    x, x_new = x[0], x_new[0]
    backend = StandIn(PHI4.grad, PHI4.shape, sigma=0.8)
    weights = np.array(QUADRATURE["simpson"][1])
    per_draw = 0.8**2 * np.sum(weights**2) * float(jnp.sum((x_new - x) ** 2))
    exact = float(PHI4.action(x_new) - PHI4.action(x))
    if mode == "mean":
        d = jax.tree.map(
            lambda a: a[0], estimate_many(GradientDelta(backend), x[None], x_new[None])[0]
        )
        assert float(d.mean) == pytest.approx(exact, rel=1e-5, abs=1e-5)
        assert float(d.var) == pytest.approx(per_draw, rel=1e-5)
    else:
        d = repeated(GradientDelta(backend, mode="draws", n_draws=5), x, x_new)
        assert abs(z_mean(d.mean, exact)) < 4
        assert abs(z_var(d.mean, per_draw / 5)) < 4
        assert abs(z_mean(d.var, per_draw / 5)) < 4


def test_energy_delta_uses_joint_draws():
    """x and x' are evaluated in ONE batch with the same draws: a per-draw offset cancels."""
    x, x_new = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.4])
    truth = float(GAUSS.action(x_new) - GAUSS.action(x))
    correlated = StandIn(GAUSS.action, GAUSS.shape, sigma=0.0, offset=3.0)
    d = repeated(EnergyDelta(correlated, mode="draws", n_draws=4), x, x_new, n=64)
    np.testing.assert_allclose(d.mean, truth, rtol=1e-5)
    np.testing.assert_allclose(d.var, 0.0, atol=1e-8)
    # independent noise per point and draw: Var of one draw's difference is 2 sigma^2
    noisy = StandIn(GAUSS.action, GAUSS.shape, sigma=0.5)
    d = repeated(EnergyDelta(noisy, mode="draws", n_draws=4), x, x_new)
    assert abs(z_mean(d.mean, truth)) < 4
    assert abs(z_var(d.mean, 2 * 0.25 / 4)) < 4
    assert abs(z_mean(d.var, 2 * 0.25 / 4)) < 4


def test_energy_delta_mean_mode_and_drift():
    x, x_new = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.4])
    est = EnergyDelta(StandIn(GAUSS.action, GAUSS.shape, sigma=0.5))
    cache = est.init(x, with_grad=True)
    np.testing.assert_allclose(cache.grad, GAUSS.grad(x), rtol=1e-5)
    assert float(cache.logdensity) == pytest.approx(-float(GAUSS.action(x)))
    d, new = est.estimate(None, x, x_new, cache, with_grad=True)
    assert float(d.mean) == pytest.approx(float(GAUSS.action(x_new) - GAUSS.action(x)), rel=1e-5)
    assert float(d.var) == pytest.approx(0.5)  # independent ends: v(x) + v(x')
    np.testing.assert_allclose(new.grad, GAUSS.grad(x_new), rtol=1e-5)
    assert float(new.logdensity) == pytest.approx(-float(GAUSS.action(x_new)), rel=1e-6)


@pytest.mark.parametrize("kind", ["energy", "gradient"])
def test_mean_mode_variance_keeps_the_covariance(kind):
    """A fully correlated error (one offset per joint draw) cancels in an energy difference and
    contributes offset^2 (sum of the quadrature weights . delta)^2 to a gradient integral:
    the mean-mode variance is that of the estimate, not a sum of per-element variances (which
    would say 2 * 9 for the energy, 9 * sum(w^2 delta^2) for the gradient)."""
    if kind == "energy":
        x, x_new = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.4])
        est = EnergyDelta(StandIn(GAUSS.action, GAUSS.shape, offset=3.0))
        expected = 0.0
    else:
        x = jnp.zeros(PHI4.shape)
        x_new = x + 0.1 * jax.random.normal(jax.random.key(0), PHI4.shape)
        est = GradientDelta(StandIn(PHI4.grad, PHI4.shape, offset=3.0))
        expected = 9.0 * float(jnp.sum(x_new - x)) ** 2  # simpson's weights sum to 1
    d, _ = est.estimate(None, x, x_new, est.init(x))
    assert float(d.var) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_mean_mode_variance_from_draws_for_a_plain_predictive():
    """A backend without ``predict_linear`` gets the variance from 64 joint draws: within
    4 standard errors of the exact value (relative SE sqrt(2/63) for Gaussian draws)."""

    class Plain:  # StandIn without predict_linear
        def __init__(self, inner):
            self.predict_mean_var, self.predict_draws = inner.predict_mean_var, inner.predict_draws

    x, x_new = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.4])
    est = EnergyDelta(Plain(StandIn(GAUSS.action, GAUSS.shape, sigma=0.5, offset=3.0)))
    d, _ = est.estimate(None, x, x_new, est.init(x))
    assert abs(float(d.var) / 0.5 - 1) < 4 * np.sqrt(2 / 63)


@pytest.mark.parametrize("kind", ["energy", "gradient"])
def test_added_noise_enters_the_estimate_and_its_variance(kind):
    """draws mode with added_noise s: each draw's Delta gets N(0, s^2), so the estimate's
    variance grows by s^2 / n and the reported sample variance follows (4-SE tolerances)."""
    s, n = 1.5, 4
    if kind == "energy":
        x, x_new = jnp.array([0.3, -0.2]), jnp.array([1.0, 0.4])
        backend, exact = StandIn(GAUSS.action, GAUSS.shape, sigma=0.5), GAUSS
        natural = 2 * 0.25
        make = partial(EnergyDelta, backend)
    else:
        x, x_new = random_pairs(PHI4.shape, 1, key=4, scale=0.2)
        x, x_new = x[0], x_new[0]
        backend, exact = StandIn(PHI4.grad, PHI4.shape, sigma=0.8), PHI4
        w = np.array(QUADRATURE["simpson"][1])
        natural = 0.8**2 * np.sum(w**2) * float(jnp.sum((x_new - x) ** 2))
        make = partial(GradientDelta, backend)
    truth = float(exact.action(x_new) - exact.action(x))
    d = repeated(make(mode="draws", n_draws=n, added_noise=s), x, x_new)
    assert abs(z_mean(d.mean, truth)) < 4
    assert abs(z_var(d.mean, (natural + s**2) / n)) < 4
    assert abs(z_mean(d.var, (natural + s**2) / n)) < 4
    with pytest.raises(ValueError, match="added_noise"):
        make(mode="mean", added_noise=s)


def test_gradient_estimators_keep_no_logdensity():
    backend = StandIn(PHI4.grad, PHI4.shape, sigma=0.1)
    x = jnp.zeros(PHI4.shape)
    assert GradientDelta(backend).init(x).logdensity is None
    assert GradientDelta(backend, mode="draws", n_draws=3).init(x, True).grad.shape == x.shape


def test_nonfinite_prediction_is_flagged():
    def grad(x):
        return jnp.where(jnp.abs(x) > 2.0, jnp.nan, PHI4.grad(x))

    est = GradientDelta(StandIn(grad, PHI4.shape, sigma=0.1))
    x = jnp.zeros(PHI4.shape)
    d, _ = est.estimate(None, x, x.at[0, 0].set(3.0), est.init(x))
    assert not bool(d.finite)
    d, _ = est.estimate(None, x, x.at[0, 0].set(1.0), est.init(x))
    assert bool(d.finite)


# -- argument checks -------------------------------------------------------------------------
def test_invalid_arguments():
    grad_backend = StandIn(PHI4.grad, PHI4.shape)
    with pytest.raises(ValueError, match="rule"):
        GradientDelta(grad_backend, rule="midpoint")
    with pytest.raises(ValueError, match="mode"):
        GradientDelta(grad_backend, mode="sample")
    with pytest.raises(ValueError, match="n_draws"):
        GradientDelta(grad_backend, mode="draws")
    with pytest.raises(ValueError, match="n_draws"):
        EnergyDelta(grad_backend, mode="draws", n_draws=1)
    with pytest.raises(ValueError, match="n_draws"):
        EnergyDelta(grad_backend, mode="mean", n_draws=4)
    with pytest.raises(ValueError, match="sigma"):
        NoisyOracle(PHI4, -1.0)
    with pytest.raises(ValueError, match="on"):
        NoisyOracle(PHI4, 1.0, on="action")
    with pytest.raises(ValueError, match="n_draws"):
        NoisyOracle(PHI4, 1.0, n_draws=1)
    with pytest.raises(TypeError, match="grad"):
        ExactDelta(object())
    with pytest.raises(TypeError, match="predict_draws"):
        GradientDelta(PHI4)


class EnergyOnly:
    """A backend without declared shapes that predicts the action, not its gradient."""

    def predict_mean_var(self, x):
        e = PHI4.action(x)
        return e, jnp.zeros_like(e)

    def predict_draws(self, key, x, n):
        return jnp.broadcast_to(PHI4.action(x), (n, *x.shape[:-2]))


@pytest.mark.parametrize(
    "est, position",
    [
        (ExactDelta(GAUSS), jnp.zeros(3)),
        (ExactDelta(DoubleWell(dim=1)), jnp.zeros(2)),  # would broadcast silently
        (NoisyOracle(PHI4, 1.0), jnp.zeros((6, 6))),
        (GradientDelta(StandIn(PHI4.grad, PHI4.shape)), jnp.zeros((4, 4, 4))),
        (EnergyDelta(StandIn(PHI4.action, PHI4.shape)), jnp.zeros((2, 4, 4))),
        (GradientDelta(EnergyOnly()), jnp.zeros((4, 4))),  # an energy backend by mistake
    ],
)
def test_shape_mismatch_names_position(est, position):
    with pytest.raises(ValueError, match="position"):
        est.check_position(position)
