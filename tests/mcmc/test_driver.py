import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc import _arviz
from uqmcmc.mcmc import (
    BatchedAlgorithm,
    CeperleyDewing,
    NoisyOracle,
    Switch,
    batch_size,
    batched,
    checkerboard,
    mala,
    rmh,
    run_chains,
)
from uqmcmc.mcmc.adaptation import dual_averaging, fixed_step_size
from uqmcmc.mcmc.sampling_loop import chunk_sizes
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
def test_a_callable_progress_counts_every_step_of_every_chunk():
    """Warm-up and thinned draws are all counted, chunk by chunk; a steps total that is not a
    multiple of thin counts the steps actually taken."""
    t = Phi4(4, 0.5, 1.0)
    calls = []
    run_chains(checkerboard(t, 1.0), 1, jnp.zeros((2, 4, 4)), 52, warmup=7, thin=5,
               target=t, num_chunks=3, progress=calls.append)  # fmt: skip
    assert sum(calls) == 7 + 50 and len(calls) >= 4, calls


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
    assert chunk_sizes(0, 5) == []
    assert chunk_sizes(10, 3) == [4, 4, 2]
    assert sum(chunk_sizes(1001, 20)) == 1001


# -- the algorithm's forms ---------------------------------------------------------------------
def _posterior(idata, name="x"):
    return _arviz.group(idata, "posterior")[name].values


def test_batched_algorithm_is_recognised_by_type(gaussian):
    est = NoisyOracle(gaussian, 1.0)
    pair = batched(jnp.array([False, True]), lambda on: rmh(est, 0.5, Switch(CeperleyDewing(), on)))
    assert isinstance(pair, BatchedAlgorithm) and batch_size(pair) == 2
    assert batch_size(rmh(est, 0.5)) is None
    # the variant count is a field of the algorithm, not of its step: a jitted step keeps it
    jitted = pair._replace(step=jax.jit(pair.step))
    idata = run_chains(jitted, 0, jnp.zeros((3, 2, 2)), 20, num_chunks=1, progress=False)
    assert _posterior(idata).shape == (3, 20, 2, 2)  # chain, draw, variant, coordinate
    assert _arviz.group(idata, "posterior")["x"].dims[2] == "variant"
    penalty = _arviz.group(idata, "sample_stats")["penalty"].values
    assert penalty.shape == (3, 20, 2) and np.all(penalty[..., 0] == 0)
    np.testing.assert_allclose(penalty[..., 1], 0.5)


def test_plain_algorithm_with_a_jitted_step_runs_as_one_configuration(gaussian):
    alg = rmh(NoisyOracle(gaussian, 0.5), 0.5)
    jitted = blackjax.base.SamplingAlgorithm(alg.init, jax.jit(alg.step))
    idata = run_chains(jitted, 1, jnp.zeros((4, 2)), 30, num_chunks=1, progress=False)
    assert _posterior(idata).shape == (4, 30, 2)  # (2,) is one configuration, no variants
    assert "variant" not in _arviz.group(idata, "posterior")["x"].dims
    assert _arviz.group(idata, "sample_stats")["penalty"].shape == (4, 30)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["plain", "batched"])
def test_a_jitted_step_gives_the_same_chains(gaussian, kind):
    est = NoisyOracle(gaussian, 1.0)
    if kind == "plain":
        alg, x0 = mala(est, 0.1), jnp.zeros((4, 2))
    else:
        alg = batched(
            jnp.array([False, True]), lambda on: mala(est, 0.1, Switch(CeperleyDewing(), on))
        )
        x0 = jnp.zeros((4, 2, 2))
    jitted = alg._replace(step=jax.jit(alg.step))
    runs = [run_chains(a, 1, x0, 30, warmup=5, progress=False) for a in (alg, jitted)]
    np.testing.assert_allclose(_posterior(runs[0]), _posterior(runs[1]), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_tuning_a_batched_factory_gives_one_step_size(gaussian):
    est = NoisyOracle(gaussian, 1.0)

    def pair(eps):
        return batched(
            jnp.array([False, True]), lambda on: mala(est, eps, Switch(CeperleyDewing(), on))
        )

    idata = run_chains(
        pair, 2, jnp.zeros((4, 2, 2)), 20, warmup=40, step_size=0.05, target_acceptance=0.5,
        progress=False,
    )  # fmt: skip
    assert isinstance(_arviz.attrs(idata)["step_size"], float)
    assert _posterior(idata).shape == (4, 20, 2, 2)


def test_not_an_algorithm():
    with pytest.raises(TypeError, match="SamplingAlgorithm or a function"):
        run_chains(object(), 0, jnp.zeros((2, 2)), 5, progress=False)


def test_adaptations():
    fixed = fixed_step_size(jnp.asarray(0.25))
    assert not fixed.tunes and fixed.update is None
    assert float(fixed.final(fixed.init(jnp.asarray(0.25)))) == 0.25
    tuned = dual_averaging(0.6)
    assert tuned.tunes
    state = tuned.init(jnp.asarray(0.25))
    assert float(tuned.current(state)) == pytest.approx(0.25, rel=1e-6)
    with pytest.raises(ValueError, match="target_acceptance"):
        dual_averaging(1.5)


class _FlakyGradient:
    """Exact ``grad S`` of a Gaussian whose joint draws are all NaN with probability ``p``
    (one coin per call, i.e. per step in draws mode): a surrogate that blows up on a known
    fraction of steps."""

    def __init__(self, target, p):
        self.target, self.p = target, p

    def predict_mean_var(self, x):
        return self.target.grad(x), jnp.zeros_like(x)

    def predict_draws(self, key, x, n):
        k_nan, k_noise = jax.random.split(key)
        draws = self.target.grad(x) + 0.01 * jax.random.normal(k_noise, (n, *x.shape))
        return jnp.where(jax.random.uniform(k_nan) < self.p, jnp.nan, draws)


@pytest.mark.parametrize("thin", [pytest.param(1, marks=pytest.mark.slow), 5])
def test_nonfinite_steps_are_counted_over_every_step(gaussian, thin):
    """10 % of the steps get NaN predictions: every one of them is counted (within 4 binomial
    standard errors of 10 % of ALL sampling steps), whatever the thinning. Counting only the
    kept steps, as the driver once did, finds a fifth of them at thin = 5."""
    from uqmcmc.diagnostics import run_stats
    from uqmcmc.mcmc import GradientDelta, mala

    chains, steps, p = 8, 2000, 0.1
    est = GradientDelta(_FlakyGradient(gaussian, p), mode="draws", n_draws=4)
    idata = run_chains(
        mala(est, 0.3, "ceperley-dewing-estimated"), 0, jnp.zeros((chains, 2)), steps,
        thin=thin, progress=False,
    )  # fmt: skip
    n = chains * steps
    counted = run_stats(idata)["nonfinite"]
    assert abs(counted - p * n) < 4 * np.sqrt(n * p * (1 - p)), (counted, p * n)
    assert idata.sample_stats["nonfinite"].shape == (chains, steps // thin)
