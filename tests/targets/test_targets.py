import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc.targets import DoubleWell, Gaussian, Phi4, Target, binder, susceptibility
from uqmcmc.targets.base import check_target, default_observables, logdensity_fn


@pytest.fixture
def fields():
    return jax.random.normal(jax.random.key(1), (5, 6, 6))


def test_action_hand_computed():
    t = Phi4(L=2, beta=0.5, g=1.0)
    phi = jnp.array([[1.0, 2.0], [0.0, -1.0]])
    # hopping: each site couples to x+1 and y+1 (periodic, L=2 -> each bond counted via roll)
    hop = sum(
        phi[i, j] * (phi[i, (j + 1) % 2] + phi[(i + 1) % 2, j]) for i in range(2) for j in range(2)
    )
    pot = sum(float(p) ** 2 + (float(p) ** 2 - 1) ** 2 for p in phi.ravel())
    assert float(t.action(phi)) == pytest.approx(-0.5 * float(hop) + pot, rel=1e-6)
    # constant field: S = V (-2 beta c^2 + c^2 + g (c^2 - 1)^2)
    t4 = Phi4(L=4, beta=0.3, g=2.0)
    c = 1.5
    expect = 16 * (-2 * 0.3 * c**2 + c**2 + 2.0 * (c**2 - 1) ** 2)
    assert float(t4.action(jnp.full((4, 4), c))) == pytest.approx(expect, rel=1e-6)


def test_grad_matches_autodiff(fields):
    t = Phi4(L=6, beta=0.7, g=1.3)
    auto = jax.vmap(jax.grad(t.action))(fields)
    np.testing.assert_allclose(t.grad(fields), auto, rtol=1e-5, atol=1e-5)


def test_symmetries(fields):
    t = Phi4(L=6, beta=0.7, g=1.0)
    s = t.action(fields)
    np.testing.assert_allclose(t.action(-fields), s, rtol=1e-6)
    shifted = jnp.roll(jnp.roll(fields, 2, axis=-1), -1, axis=-2)
    np.testing.assert_allclose(t.action(shifted), s, rtol=1e-5)
    np.testing.assert_allclose(t.action(jnp.swapaxes(fields, -1, -2)), s, rtol=1e-5)
    obs, obs_shift = t.observables(fields), t.observables(shifted)
    for k in obs:
        np.testing.assert_allclose(obs[k], obs_shift[k], rtol=1e-4, atol=1e-5)


def test_local_delta_matches_action(fields):
    t = Phi4(L=6, beta=0.7, g=1.0)
    phi = fields[0]
    proposed = phi + jax.random.normal(jax.random.key(2), phi.shape)
    delta = t.local_delta(phi, proposed)
    for i, j in [(0, 0), (2, 5), (5, 3)]:
        moved = phi.at[i, j].set(proposed[i, j])
        assert float(delta[i, j]) == pytest.approx(float(t.action(moved) - t.action(phi)), abs=2e-4)


def test_observables_known_inputs():
    t = Phi4(L=4, beta=0.5, g=1.0)
    phi = jnp.full((4, 4), -0.5)
    obs = t.observables(phi)
    assert float(obs["m"]) == pytest.approx(-0.5)
    assert float(obs["abs_m"]) == pytest.approx(0.5)
    assert float(obs["m4"]) == pytest.approx(0.0625)
    np.testing.assert_allclose(obs["G"], 0.25)  # constant field: G(r) = c^2
    assert float(obs["Gp1"]) == pytest.approx(0.0, abs=1e-6)  # no non-zero momentum
    assert float(obs["sd"]) == pytest.approx(float(jnp.mean(phi * t.grad(phi))))
    stripes = jnp.tile(jnp.array([1.0, -1.0, 1.0, -1.0]), (4, 1))
    g = t.observables(stripes)["G"]
    np.testing.assert_allclose(g, [1.0, 0.0, 1.0], atol=1e-6)  # mean of +-1 along x and 1 along y


def test_batched_observables_shapes(fields):
    t = Phi4(L=6, beta=0.5, g=1.0)
    obs = t.observables(fields)
    assert obs["G"].shape == (5, 4)
    assert obs["abs_m"].shape == (5,)


def test_estimators_on_known_inputs():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(16, 400))
    abs_m, m2, m4 = np.abs(m), m**2, m**4
    t = Phi4(L=4, beta=0.5, g=1.0)
    d = t.derived({"abs_m": abs_m, "m2": m2, "m4": m4, "Gp1": np.full_like(m, 0.1)})
    # For a Gaussian M: <M^4> = 3<M^2>^2, so U = 0, and chi = V (1 - 2/pi).
    assert abs(d["binder"][0]) < 4 * d["binder"][1]
    chi_true = 16 * (1 - 2 / np.pi)
    assert abs(d["chi_abs"][0] - chi_true) < 4 * d["chi_abs"][1]
    assert binder(1.0, 3.0) == pytest.approx(0.0)
    assert susceptibility(0.5, 0.5, 4) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"L": 1, "beta": 0.5, "g": 1.0}, "L must"),
        ({"L": 4.5, "beta": 0.5, "g": 1.0}, "L must"),
        ({"L": 4, "beta": float("nan"), "g": 1.0}, "beta must be finite"),
        ({"L": 4, "beta": 0.5, "g": -1.0}, "g must be >= 0"),
    ],
)
def test_phi4_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Phi4(**kwargs)


def test_phi4_wrong_shape():
    with pytest.raises(ValueError, match="trailing shape"):
        Phi4(4, 0.5, 1.0).action(jnp.zeros((3, 3)))


def test_gaussian_and_double_well():
    cov = jnp.array([[1.0, 0.6], [0.6, 2.0]])
    t = Gaussian(jnp.array([0.5, -1.0]), cov)
    x = jnp.array([0.3, 0.2])
    np.testing.assert_allclose(t.grad(x), jax.grad(t.action)(x), rtol=1e-5)
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian(jnp.zeros(2), jnp.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="cov must have shape"):
        Gaussian(jnp.zeros(2), jnp.eye(3))
    with pytest.raises(ValueError, match="mean must be finite"):
        Gaussian(jnp.array([0.0, jnp.inf]), jnp.eye(2))
    w = DoubleWell(dim=2, barrier=1.0, tilt=0.2)
    x = jnp.array([0.3, -1.2])
    np.testing.assert_allclose(w.grad(x), jax.grad(w.action)(x), rtol=1e-5)
    mom = DoubleWell(dim=1, barrier=1.0, tilt=0.0).moments()
    assert abs(mom["mean"][0]) < 1e-8 and mom["var"][0] > 0.5
    with pytest.raises(ValueError, match="barrier"):
        DoubleWell(barrier=0.0)


def test_protocol_is_duck_typed():
    class Mine:
        def action(self, x):
            return jnp.sum(x**4)

        def grad(self, x):
            return 4 * x**3

    assert isinstance(Mine(), Target)
    check_target(Mine())
    assert float(logdensity_fn(Mine())(jnp.ones(3))) == -3.0
    assert set(default_observables(Mine())(jnp.ones(3))) == {"x"}
    with pytest.raises(TypeError, match="grad"):
        check_target(object())
