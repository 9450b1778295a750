import blackjax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc import _arviz
from uqmcmc.mcmc import checkerboard, run_chains
from uqmcmc.mcmc.driver import _chunks
from uqmcmc.targets import Gaussian, Phi4, logdensity_fn


@pytest.fixture
def gaussian():
    return Gaussian(jnp.array([1.0, -2.0]), jnp.array([[1.0, 0.8], [0.8, 2.0]]))


def test_step_size_tuning_reaches_target(gaussian):
    logp = logdensity_fn(gaussian)
    idata = run_chains(
        lambda s: blackjax.mala(logp, s),
        0,
        jnp.zeros((8, 2)),
        2000,
        warmup=1000,
        step_size=1e-3,
        target_acceptance=0.6,
        target=gaussian,
        progress=False,
    )
    stats = _arviz.group(idata, "sample_stats")
    assert abs(float(stats["acceptance_rate"].mean()) - 0.6) < 0.08
    assert _arviz.attrs(idata)["step_size"] > 1e-2
    x = _arviz.group(idata, "posterior")["x"].values  # (chain, draw, 2)
    for i, (mu, var) in enumerate(zip(gaussian.mean, jnp.diag(gaussian.cov), strict=True)):
        s = _arviz.summarize(x[..., i])
        assert abs(s["mean"] - float(mu)) < 4 * s["mcse"]
        s2 = _arviz.summarize((x[..., i] - float(mu)) ** 2)
        assert abs(s2["mean"] - float(var)) < 4 * s2["mcse"]


@pytest.mark.slow
def test_thin_positions_and_state(gaussian):
    t = Phi4(4, 0.5, 1.0)
    idata, state = run_chains(
        checkerboard(t, 1.0),
        1,
        jnp.zeros((3, 4, 4)),
        50,
        thin=5,
        target=t,
        record_positions=True,
        num_chunks=3,
        progress=False,
        return_state=True,
    )
    post = _arviz.group(idata, "posterior")
    assert post["position"].shape == (3, 10, 4, 4)
    assert post["G"].dims == ("chain", "draw", "r")
    np.testing.assert_allclose(post["position"].values[:, -1], state.position)
    stats = _arviz.group(idata, "sample_stats")
    assert set(stats.data_vars) >= {"acceptance_rate", "is_accepted", "lp"}
    np.testing.assert_allclose(
        stats["lp"].values[:, -1], -np.asarray(t.action(state.position)), rtol=1e-5
    )


@pytest.mark.slow
def test_same_seed_same_numbers():
    t = Phi4(4, 0.5, 1.0)

    def run():
        return run_chains(checkerboard(t, 1.0), 7, jnp.zeros((2, 4, 4)), 40, progress=False)

    a, b = run(), run()
    np.testing.assert_array_equal(
        _arviz.group(a, "posterior")["x"].values, _arviz.group(b, "posterior")["x"].values
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_steps": 0}, "num_steps"),
        ({"thin": 0}, "thin"),
        ({"warmup": -1}, "warmup"),
        ({"num_steps": 3, "thin": 5}, "at least thin"),
        ({"initial_positions": jnp.full((2, 4, 4), jnp.nan)}, "finite"),
        ({"target_acceptance": 0.5}, "target_acceptance needs"),
    ],
)
def test_bad_arguments(kwargs, match):
    t = Phi4(4, 0.5, 1.0)
    args = {"initial_positions": jnp.zeros((2, 4, 4)), "num_steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        run_chains(checkerboard(t, 1.0), 0, progress=False, **args)


def test_tuning_arguments(gaussian):
    logp = logdensity_fn(gaussian)
    with pytest.raises(ValueError, match="step_size is required"):
        run_chains(lambda s: blackjax.mala(logp, s), 0, jnp.zeros((2, 2)), 5, progress=False)
    with pytest.raises(ValueError, match="warmup >= 1"):
        run_chains(
            lambda s: blackjax.mala(logp, s),
            0,
            jnp.zeros((2, 2)),
            5,
            step_size=0.1,
            target_acceptance=0.5,
            progress=False,
        )
    with pytest.raises(ValueError, match="step_size must be"):
        checkerboard(Phi4(4, 0.5, 1.0), -1.0)
    with pytest.raises(ValueError, match="even lattice"):
        checkerboard(Phi4(5, 0.5, 1.0), 1.0)


def test_chunks():
    assert _chunks(0, 5) == []
    assert _chunks(10, 3) == [4, 4, 2]
    assert sum(_chunks(1001, 20)) == 1001
