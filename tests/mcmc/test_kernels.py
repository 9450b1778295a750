"""rmh and mala: BlackJAX's distributions with the exact estimator, drivers, compilation, errors,
and BlackJAX's access pattern (``mala(...)``, ``mala.init``, ``mala.build_kernel``)."""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _standins import (
    StandIn,
    equilibrated_phi4,
    phi4_reference,
    sample,
    z_between,
    z_vs_reference,
)
from blackjax.util import run_inference_algorithm

from uqmcmc import _arviz
from uqmcmc.diagnostics.noise import check_noise
from uqmcmc.mcmc import (
    EnergyDelta,
    ExactDelta,
    GradientDelta,
    NoisyOracle,
    checkerboard,
    mala,
    rmh,
    run_chains,
)
from uqmcmc.mcmc import metropolis as metropolis_module
from uqmcmc.mcmc.estimators import standard_normal
from uqmcmc.targets import DoubleWell, Gaussian, Phi4, logdensity_fn

GAUSS = Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.6], [0.6, 2.0]]))
WELL = DoubleWell(dim=1, barrier=1.0, tilt=0.3)
PHI4 = Phi4(L=4, beta=0.5, g=1.0)
N_CHAINS, N_STEPS = 128, 3000


def analytic_case(target):
    mom = target.moments()
    mean = jnp.asarray(mom["mean"])
    truths = [(float(t), 0.0) for t in np.concatenate([mom["mean"], mom["var"]])]
    x0 = mean + standard_normal(jax.random.key(1), (N_CHAINS, *target.shape))

    def observe(x):
        return jnp.concatenate([x, (x - mean) ** 2])  # means and variances

    return x0, observe, truths


def phi4_case(target):
    ref = phi4_reference(target)
    x0 = equilibrated_phi4(target, N_CHAINS)

    def observe(phi):
        o = target.observables(phi)
        return jnp.stack([o["abs_m"], o["m2"], o["action_density"]])

    return x0, observe, [ref["abs_m"], ref["m2"], ref["action_density"]]


# target, case builder, rmh step, mala step
CASES = {
    "gaussian": (GAUSS, analytic_case, 1.2, 0.4),
    "double_well": (WELL, analytic_case, 1.0, 0.1),
    "phi4_L4": (PHI4, phi4_case, 0.25, 0.05),
}


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["rmh", "mala"])
@pytest.mark.parametrize("case", list(CASES))
def test_exact_estimator_reproduces_blackjax(case, kernel):
    target, build_case, eps_rmh, eps_mala = CASES[case]
    x0, observe, truths = build_case(target)
    if kernel == "rmh":
        ours = rmh(ExactDelta(target), eps_rmh)
        theirs = blackjax.normal_random_walk(logdensity_fn(target), eps_rmh)
    else:
        ours = mala(ExactDelta(target), eps_mala)
        theirs = blackjax.mala(logdensity_fn(target), eps_mala)
    obs, info = sample(ours, jax.random.key(2), x0, N_STEPS, observe, warmup=200)
    ref, ref_info = sample(theirs, jax.random.key(3), x0, N_STEPS, observe, warmup=200)
    for i, truth in enumerate(truths):
        z_ours, z_theirs = z_vs_reference(obs[..., i], truth), z_vs_reference(ref[..., i], truth)
        z_pair = z_between(obs[..., i], ref[..., i])
        assert max(abs(z_ours), abs(z_theirs), abs(z_pair)) < 4, (i, z_ours, z_theirs, z_pair)
    # the same kernel: the same mean acceptance (SE ~ 1e-3 over 128 x 3000 steps)
    assert abs(float(info.acceptance_rate.mean() - ref_info.acceptance_rate.mean())) < 0.02
    assert np.all(info.delta_var == 0) and np.all(info.penalty == 0)


# -- drivers ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_run_chains_records_noise_stats_and_lp():
    x0 = equilibrated_phi4(PHI4, N_CHAINS)[:8]
    est = NoisyOracle(PHI4, 1.0, on="grad")
    idata = run_chains(
        rmh(est, 0.2), 0, x0, 60, warmup=10, target=PHI4, num_chunks=1, progress=False
    )
    stats = _arviz.group(idata, "sample_stats")
    for name in ("acceptance_rate", "is_accepted", "delta_mean", "delta_var", "penalty"):
        assert stats[name].shape == (8, 60)
    assert int(stats["nonfinite"].sum()) == 0 and int(stats["out_of_range"].sum()) == 0
    np.testing.assert_allclose(stats["penalty"], stats["delta_var"] / 2, rtol=1e-6)
    posterior = _arviz.group(idata, "posterior")
    np.testing.assert_allclose(-stats["lp"], posterior["action_density"] * 16, rtol=1e-4)
    assert 0.0 < check_noise(idata) < 2.0

    backend = StandIn(PHI4.grad, PHI4.shape, sigma=0.3)
    idata = run_chains(
        mala(GradientDelta(backend, mode="draws", n_draws=4), 0.02, "ceperley-dewing-estimated"),
        1,
        x0,
        30,
        target=PHI4,
        num_chunks=1,
        progress=False,
    )
    stats = _arviz.group(idata, "sample_stats")
    assert "lp" not in stats and stats["out_of_range"].shape == (8, 30)


@pytest.mark.slow
def test_run_chains_tunes_a_traced_step_size():
    x0 = equilibrated_phi4(PHI4, N_CHAINS)[:16]
    idata = run_chains(
        lambda eps: mala(ExactDelta(PHI4), eps),
        0,
        x0,
        200,
        warmup=300,
        step_size=0.01,
        target_acceptance=0.6,
        num_chunks=1,
        progress=False,
    )
    rate = float(_arviz.group(idata, "sample_stats")["acceptance_rate"].mean())
    assert abs(rate - 0.6) < 0.1
    assert _arviz.attrs(idata)["step_size"] > 0.01


@pytest.mark.parametrize("kernel", [rmh, mala], ids=["rmh", "mala"])
def test_runs_under_blackjax_run_inference_algorithm(kernel):
    alg = kernel(NoisyOracle(GAUSS, 0.5), 0.3)
    state, (states, info) = run_inference_algorithm(
        jax.random.key(0), alg, 50, initial_position=jnp.zeros(2)
    )
    assert states.position.shape == (50, 2) and info.delta_mean.shape == (50,)
    np.testing.assert_allclose(state.logdensity, -GAUSS.action(state.position), rtol=1e-5)


@pytest.mark.parametrize("kernel", [rmh, mala], ids=["rmh", "mala"])
def test_every_estimator_runs_in_both_kernels(kernel):
    energy = StandIn(GAUSS.action, GAUSS.shape, sigma=0.1)
    grad = StandIn(GAUSS.grad, GAUSS.shape, sigma=0.1)
    estimators = {  # name: (estimator, acceptance, state has logdensity)
        "exact": (ExactDelta(GAUSS), "none", True),
        "oracle": (
            NoisyOracle(GAUSS, 0.3, on="grad", n_draws=3),
            "ceperley-dewing-estimated",
            True,
        ),
        "energy-mean": (EnergyDelta(energy), "ceperley-dewing", True),
        "energy-draws": (EnergyDelta(energy, "draws", 4), "ceperley-dewing-estimated", False),
        "grad-mean": (GradientDelta(grad, "trapezoid"), "ceperley-dewing", False),
        "grad-draws": (GradientDelta(grad, "first-order", "draws", 3), "ceperley-dewing", False),
    }

    @jax.jit
    def run_all(key):
        out = {}
        for name, (est, acceptance, _) in estimators.items():
            alg = kernel(est, 0.2, acceptance)
            keys = jax.random.split(key, 20)
            out[name] = jax.lax.scan(
                lambda s, k, alg=alg: alg.step(k, s), alg.init(jnp.zeros(2)), keys
            )
        return out

    for name, (state, info) in run_all(jax.random.key(0)).items():
        assert np.all(np.isfinite(state.position)) and info.delta_mean.shape == (20,), name
        assert 0 < info.is_accepted.mean() and not info.nonfinite.any(), name
        assert hasattr(state, "logdensity") == estimators[name][2], name


# -- compilation -----------------------------------------------------------------------------
class CountingEstimator:
    """Wraps an estimator and counts the Python calls of ``estimate`` (= traces)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def estimate(self, *args, **kwargs):
        self.calls += 1
        return self.inner.estimate(*args, **kwargs)


@pytest.mark.parametrize("kernel", [rmh, mala], ids=["rmh", "mala"])
def test_compiles_once_and_does_no_python_work_per_step(kernel):
    est = CountingEstimator(NoisyOracle(GAUSS, 1.0, on="grad"))
    alg = kernel(est, 0.05)

    @jax.jit
    def run(states, keys):
        def one(s, k):
            return jax.vmap(alg.step)(jax.random.split(k, 16), s)

        return jax.lax.scan(one, states, keys)

    states = jax.vmap(alg.init)(jnp.zeros((16, 2)))
    for i in range(3):
        states, _ = run(states, jax.random.split(jax.random.key(i), 7))
    assert est.calls == 1  # 3 x 7 vmapped steps from one trace: no Python work per step


# -- non-finite predictions ------------------------------------------------------------------
class Walled:
    """A Gaussian whose action is NaN outside |x_i| < 1.5 (a model out of its domain)."""

    def action(self, x):
        return jnp.where(jnp.all(jnp.abs(x) < 1.5), 0.5 * jnp.sum(x * x), jnp.nan)

    def grad(self, x):
        return x


def walled_grad(x):
    return jnp.where(jnp.abs(x) < 1.5, x, jnp.inf)


@pytest.mark.parametrize(
    "build",
    [
        lambda: rmh(ExactDelta(Walled()), 1.0),
        lambda: mala(GradientDelta(StandIn(walled_grad, (2,))), 0.5),
    ],
)
def test_nonfinite_predictions_reject_and_are_counted(build):
    x0 = jnp.zeros((32, 2))
    pos, info = sample(build(), jax.random.key(0), x0, 300, lambda x: x)
    assert np.all(np.isfinite(pos)) and np.all(np.abs(pos) < 1.5)
    assert info.nonfinite.sum() > 100
    assert not np.any(info.is_accepted & info.nonfinite)
    assert np.all(info.acceptance_rate[info.nonfinite] == 0)
    assert info.is_accepted.mean() > 0.2  # the run goes on


# -- state and arguments ---------------------------------------------------------------------
def test_state_logdensity_only_when_known():
    x = jnp.ones(2)
    state = rmh(ExactDelta(GAUSS), 1.0).init(x)
    assert float(state.logdensity) == pytest.approx(-float(GAUSS.action(x)))
    state = rmh(GradientDelta(StandIn(GAUSS.grad, (2,))), 1.0).init(x)
    assert not hasattr(state, "logdensity")


@pytest.mark.parametrize("kernel", [rmh, mala], ids=["rmh", "mala"])
def test_invalid_arguments(kernel):
    est = ExactDelta(GAUSS)
    for bad in (0.0, -1.0, float("nan"), float("inf"), "big"):
        with pytest.raises(ValueError, match="step_size"):
            kernel(est, bad)
    with pytest.raises(ValueError, match="acceptance"):
        kernel(est, 0.1, acceptance="metropolis")
    with pytest.raises(ValueError, match="n_draws"):
        kernel(est, 0.1, acceptance="ceperley-dewing-estimated")
    with pytest.raises(ValueError, match="n_draws"):
        kernel(NoisyOracle(GAUSS, 1.0), 0.1, acceptance="ceperley-dewing-estimated")
    with pytest.raises(ValueError, match="position"):
        kernel(est, 0.1).init(jnp.zeros(3))
    with pytest.raises(TypeError, match="estimator"):
        kernel(GAUSS, 0.1)


# -- BlackJAX's access pattern ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["rmh", "mala"])
def test_callable_with_init_and_build_kernel(name):
    import importlib
    import sys

    api = {"rmh": rmh, "mala": mala}[name]
    module = sys.modules[f"uqmcmc.mcmc.{name}"]
    assert importlib.import_module(f"uqmcmc.mcmc.{name}") is module  # the module stays importable
    assert api.init is module.init and api.build_kernel is module.build_kernel
    assert api.as_top_level_api is module.as_top_level_api  # other names are forwarded
    est, key, eps = NoisyOracle(GAUSS, 0.5), jax.random.key(3), 0.2
    alg = api(est, eps, "ceperley-dewing")
    by_alg = jax.jit(alg.step)(key, alg.init(jnp.zeros(2)))
    kernel = jax.jit(api.build_kernel("ceperley-dewing"), static_argnums=2)
    by_kernel = kernel(key, api.init(jnp.zeros(2), est), est, eps)
    for a, b in zip(jax.tree.leaves(by_alg), jax.tree.leaves(by_kernel), strict=True):
        np.testing.assert_array_equal(a, b)  # the same kernel: the same numbers
    assert repr(api).startswith(f"<SamplingAPI of uqmcmc.mcmc.{name}")


def test_import_as_gives_the_api_and_checkerboard_has_the_pattern():
    import uqmcmc.mcmc.mala as m

    assert m is mala and m.init is mala.init and callable(m)
    state = checkerboard.init(jnp.zeros((4, 4)), PHI4)
    new, info = jax.jit(checkerboard.build_kernel(PHI4))(jax.random.key(0), state, 0.5)
    assert new.position.shape == (4, 4) and 0 <= float(info.acceptance_rate) <= 1


def test_build_kernel_takes_n_draws_for_the_estimated_rule():
    est = NoisyOracle(GAUSS, 0.5, n_draws=4)
    kernel = mala.build_kernel("ceperley-dewing-estimated", n_draws=4)
    _, info = kernel(jax.random.key(0), mala.init(jnp.zeros(2), est), est, 0.1)
    assert bool(info.penalty > 0) and not bool(info.out_of_range)
    with pytest.raises(ValueError, match="needs a sample variance"):
        rmh.build_kernel("ceperley-dewing-estimated")


@pytest.mark.parametrize("kernel", [rmh, mala], ids=["rmh", "mala"])
def test_the_rule_is_resolved_once_at_construction(kernel, monkeypatch):
    est = NoisyOracle(GAUSS, 0.5, n_draws=4)
    calls = []
    resolve = metropolis_module.as_penalty

    def counting(*args):
        calls.append(args)
        return resolve(*args)

    monkeypatch.setattr(metropolis_module, "as_penalty", counting)
    alg = kernel(est, 0.1, "ceperley-dewing-estimated")
    assert calls == [("ceperley-dewing-estimated", 4)]
    jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros(2)))  # tracing resolves nothing
    assert len(calls) == 1
