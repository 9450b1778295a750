"""Delayed acceptance: exact for a deliberately poor surrogate, detectably wrong when the
correction is broken, honest counters, the driver, errors.

Every statistical check is ``|estimate - truth| / MCSE < 4`` with ArviZ's ESS-aware MCSE over
many chains; the broken-correction tests assert the same check FAILS (``> 4 MCSE``).
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _standins import StandIn, sample, z_vs_reference
from jax.experimental import io_callback

from uqmcmc import _arviz
from uqmcmc.mcmc import EnergyDelta, ExactDelta, GradientDelta, NoisyOracle, run_chains
from uqmcmc.mcmc.delayed_acceptance import as_top_level_api as delayed_acceptance
from uqmcmc.mcmc.estimators import standard_normal
from uqmcmc.targets import DoubleWell, Gaussian

#: The module itself (``uqmcmc.mcmc.delayed_acceptance`` in the package namespace is the
#: BlackJAX-style API object that shadows it): monkeypatches must reach the module.
da_module = importlib.import_module("uqmcmc.mcmc.delayed_acceptance")

GAUSS = Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.6], [0.6, 2.0]]))
WELL = DoubleWell(dim=1, barrier=1.0, tilt=0.3)
N_CHAINS, N_STEPS, WARMUP = 64, 2000, 100


# -- deliberately poor surrogates ------------------------------------------------------------
def poor_gaussian_energy(x):
    """Wrong centre (shifted by 1 along x_0), isotropic and too wide: S-bar = |x - c|^2 / 4."""
    return 0.25 * jnp.sum((x - jnp.array([1.5, -1.0])) ** 2)


def poor_well_energy(x):
    """A single broad well for a double well: no barrier, no tilt."""
    return 0.5 * jnp.sum(x**2) / 1.5


#: A non-conservative gradient field (curl: antisymmetric part) around a wrong centre.
CURL = jnp.array([[0.7, 0.4], [-0.4, 0.9]])


def curl_gradient(x):
    return CURL @ (x - jnp.array([1.0, -0.5]))


def energy(fn, target):
    return EnergyDelta(StandIn(fn, target.shape), mode="mean")


def check(target, alg, key=0, steps=N_STEPS):
    """Per coordinate: z of the mean and of the variance against the exact moments."""
    mom = target.moments()
    mean = jnp.asarray(mom["mean"])
    x0 = mean + standard_normal(jax.random.key(100 + key), (N_CHAINS, *target.shape))

    def observe(x):
        return jnp.concatenate([x, (x - mean) ** 2])

    obs, info = sample(alg, jax.random.key(key), x0, steps, observe, warmup=WARMUP)
    truths = np.concatenate([mom["mean"], mom["var"]])
    z = [z_vs_reference(obs[..., i], (float(t), 0.0)) for i, t in enumerate(truths)]
    return np.asarray(z), info


# -- (1) exact for a poor surrogate ----------------------------------------------------------
# name: (target, surrogate estimator, step, substeps, kernel)
EXACT_CASES = {
    "energy-mala-k1": (GAUSS, energy(poor_gaussian_energy, GAUSS), 0.6, 1, "mala"),
    "energy-mala-k8": (GAUSS, energy(poor_gaussian_energy, GAUSS), 0.3, 8, "mala"),
    "energy-rmh-k1": (GAUSS, energy(poor_gaussian_energy, GAUSS), 1.2, 1, "rmh"),
    "energy-rmh-k8": (GAUSS, energy(poor_gaussian_energy, GAUSS), 0.8, 8, "rmh"),
    "well-energy-mala-k16": (WELL, energy(poor_well_energy, WELL), 0.3, 16, "mala"),
    "grad-first-order-mala-k1": (
        GAUSS,
        GradientDelta(StandIn(curl_gradient, (2,)), rule="first-order"),
        0.6,
        1,
        "mala",
    ),
    "grad-first-order-rmh-k1": (
        GAUSS,
        GradientDelta(StandIn(curl_gradient, (2,)), rule="first-order"),
        1.2,
        1,
        "rmh",
    ),
    "grad-simpson-rmh-k1": (GAUSS, GradientDelta(StandIn(curl_gradient, (2,))), 1.2, 1, "rmh"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXACT_CASES))
def test_poor_surrogate_gives_the_exact_distribution(case):
    target, est, eps, k, kernel = EXACT_CASES[case]
    z, info = check(target, delayed_acceptance(target, est, eps, substeps=k, kernel=kernel))
    assert np.all(np.abs(z) < 4), z
    # the surrogate is poor: the correction does real work
    assert 0.05 < info.correction_acceptance.mean() < 0.95
    assert info.nonfinite.sum() == 0


# -- (2) a broken correction is detected -----------------------------------------------------
def _drop_surrogate_change(delta_exact, delta_surrogate):
    return -delta_exact  # the bug: exp(-dS) instead of exp(-dS + dS-bar)


def _drop_first_stage(delta_exact, log_q, log_a1_fwd, log_a1_rev):
    return log_q - delta_exact  # the bug: no a1(y, x) / a1(x, y)


def _drop_proposal_ratio(delta_exact, log_q, log_a1_fwd, log_a1_rev):
    return log_a1_rev - log_a1_fwd - delta_exact  # the bug: no q(x | y) / q(y | x)


# (dropping a1 in the MALA case is not detectable: its first stage accepts 99.6 %)
BROKEN_CASES = {
    "energy-mala-k1": ("_short_correction", _drop_surrogate_change),
    "energy-rmh-k8": ("_short_correction", _drop_surrogate_change),
    "grad-first-order-rmh-k1": ("_general_correction", _drop_first_stage),
    "grad-first-order-mala-k1": ("_general_correction", _drop_proposal_ratio),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BROKEN_CASES))
def test_a_broken_correction_fails_the_same_check(case, monkeypatch):
    target, est, eps, k, kernel = EXACT_CASES[case]
    name, broken = BROKEN_CASES[case]
    monkeypatch.setattr(da_module, name, broken)  # read when the kernel is traced
    z, _ = check(target, delayed_acceptance(target, est, eps, substeps=k, kernel=kernel))
    assert np.max(np.abs(z)) > 4, z


# -- (3) counters ----------------------------------------------------------------------------
class CountingGaussian:
    """``GAUSS`` whose action and gradient count their executions (host callbacks)."""

    def __init__(self):
        self.shape, self.counts = GAUSS.shape, {"action": 0, "grad": 0}

    def _count(self, name):
        def bump():
            self.counts[name] += 1
            return np.int32(0)

        return io_callback(bump, jax.ShapeDtypeStruct((), jnp.int32))

    def action(self, x):
        return GAUSS.action(x) + self._count("action")

    def grad(self, x):
        return GAUSS.grad(x) + self._count("grad")


@pytest.mark.parametrize("k, kernel", [(1, "mala"), (4, "rmh")])
def test_exact_evaluations_count_the_exact_action_calls(k, kernel):
    target = CountingGaussian()
    alg = delayed_acceptance(target, energy(poor_gaussian_energy, GAUSS), 1.0, k, kernel)
    state = alg.init(jnp.zeros(2))
    assert target.counts == {"action": 1, "grad": 0}
    _, info = jax.jit(lambda s, keys: jax.lax.scan(lambda s, k: alg.step(k, s), s, keys))(
        state, jax.random.split(jax.random.key(0), 200)
    )
    n = int(info.exact_evaluations.sum())
    assert target.counts == {"action": 1 + n, "grad": 0}  # no exact gradient, ever
    # one exact action per step that moved, none otherwise (a rejected k = 1 proposal)
    assert set(np.unique(info.exact_evaluations)) <= {0, 1}
    moved = np.asarray(info.exact_evaluations == 1)
    assert np.all(info.correction_acceptance[~moved] == 1)
    assert np.all(~np.asarray(info.is_accepted)[~moved])
    if k == 1:
        assert 20 < n < 200  # a poor surrogate at a big step: many first-stage rejections
    assert np.all(info.delta_exact[~moved] == 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "est",
    [ExactDelta(GAUSS), energy(GAUSS.action, GAUSS)],
    ids=["exact", "energy-backend"],
)
def test_an_exact_surrogate_is_never_corrected(est):
    alg = delayed_acceptance(GAUSS, est, 0.4, substeps=4)
    x0 = jnp.zeros((16, 2))
    _, info = sample(alg, jax.random.key(1), x0, 200, lambda x: x)
    assert info.correction_acceptance.min() > 0.999
    assert np.all(info.is_accepted == (info.exact_evaluations == 1))
    assert 0.3 < info.subchain_acceptance.mean() < 1.0
    np.testing.assert_allclose(info.delta_exact, info.delta_surrogate, atol=1e-4)


@pytest.mark.slow
def test_run_chains_records_the_counters_and_lp():
    est = energy(poor_gaussian_energy, GAUSS)
    idata = run_chains(
        delayed_acceptance(GAUSS, est, 0.3, substeps=4),
        0,
        jnp.zeros((8, 2)),
        50,
        warmup=10,
        target=GAUSS,
        num_chunks=1,
        progress=False,
    )
    stats = _arviz.group(idata, "sample_stats")
    for name in ("exact_evaluations", "subchain_acceptance", "correction_acceptance", "lp"):
        assert stats[name].shape == (8, 50), name
    assert int(stats["nonfinite"].sum()) == 0
    assert set(np.unique(stats["exact_evaluations"])) <= {0, 1}
    x = np.asarray(_arviz.group(idata, "posterior")["x"])  # GAUSS's observables: x itself
    lp = -jax.vmap(jax.vmap(GAUSS.action))(x)
    np.testing.assert_allclose(stats["lp"], lp, rtol=1e-5, atol=1e-6)  # the exact -S


@pytest.mark.slow
def test_run_chains_tunes_the_step_size():
    est = energy(poor_gaussian_energy, GAUSS)
    idata = run_chains(
        lambda eps: delayed_acceptance(GAUSS, est, eps, substeps=2),
        0,
        jnp.zeros((8, 2)),
        50,
        warmup=100,
        step_size=0.05,
        target_acceptance=0.5,
        num_chunks=1,
        progress=False,
    )
    assert _arviz.attrs(idata)["step_size"] > 0.05


# -- non-finite predictions ------------------------------------------------------------------
def walled_energy(x):
    """The poor surrogate, NaN outside ``|x_i| < 2.5`` (a model out of its domain)."""
    return jnp.where(jnp.all(jnp.abs(x) < 2.5), poor_gaussian_energy(x), jnp.nan)


class WalledGauss:
    """``GAUSS`` with an infinite exact action for ``x_0 > 1.5``."""

    shape = GAUSS.shape

    def action(self, x):
        return jnp.where(x[0] > 1.5, jnp.inf, GAUSS.action(x))

    def grad(self, x):
        return GAUSS.grad(x)


@pytest.mark.slow
def test_nonfinite_predictions_and_actions_reject_and_are_counted():
    alg = delayed_acceptance(WalledGauss(), energy(walled_energy, GAUSS), 0.6, substeps=4)
    x0 = jnp.zeros((32, 2)) + jnp.array([0.0, -1.0])
    pos, info = sample(alg, jax.random.key(0), x0, 300, lambda x: x)
    assert np.all(np.isfinite(pos)) and np.all(np.abs(pos) < 2.5) and np.all(pos[..., 0] <= 1.5)
    assert info.nonfinite_exact.sum() > 10
    assert info.nonfinite.sum() > info.nonfinite_exact.sum()  # the surrogate's too
    assert not np.any(info.is_accepted & info.nonfinite_exact)
    assert np.all(info.correction_acceptance[info.nonfinite_exact] == 0)
    assert info.is_accepted.mean() > 0.2  # the run goes on


# -- arguments -------------------------------------------------------------------------------
def test_invalid_arguments():
    grad_est = GradientDelta(StandIn(curl_gradient, (2,)))
    est = energy(poor_gaussian_energy, GAUSS)
    with pytest.raises(ValueError, match="substeps=4 needs an energy surrogate"):
        delayed_acceptance(GAUSS, grad_est, 0.1, substeps=4)
    with pytest.raises(ValueError, match="short correction"):
        delayed_acceptance(GAUSS, grad_est, 0.1, correction="short")
    with pytest.raises(ValueError, match="deterministic"):
        delayed_acceptance(GAUSS, NoisyOracle(GAUSS, 0.1), 0.1)
    with pytest.raises(ValueError, match="deterministic"):
        delayed_acceptance(GAUSS, EnergyDelta(StandIn(GAUSS.action, (2,)), "draws", 4), 0.1)
    with pytest.raises(ValueError, match="kernel"):
        delayed_acceptance(GAUSS, est, 0.1, kernel="hmc")
    with pytest.raises(ValueError, match="correction"):
        delayed_acceptance(GAUSS, est, 0.1, correction="long")
    with pytest.raises(ValueError, match="step_size"):
        delayed_acceptance(GAUSS, est, 0.0)
    with pytest.raises(ValueError, match="substeps"):
        delayed_acceptance(GAUSS, est, 0.1, substeps=0)
    with pytest.raises(TypeError, match="estimator"):
        delayed_acceptance(GAUSS, GAUSS, 0.1)


class NoDensity:
    """A custom deterministic estimator without a log-density (not a ``GradientDelta``)."""

    variance = "propagated"

    def __init__(self):
        self.inner = GradientDelta(StandIn(curl_gradient, (2,)))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_density_free_estimator_with_substeps_is_refused_at_init():
    alg = delayed_acceptance(GAUSS, NoDensity(), 0.1, substeps=3)
    with pytest.raises(ValueError, match="substeps=3 needs an energy surrogate"):
        alg.init(jnp.zeros(2))
    alg = delayed_acceptance(GAUSS, NoDensity(), 0.1)  # k = 1: the general correction
    _, info = jax.jit(alg.step)(jax.random.key(0), alg.init(jnp.zeros(2)))
    assert info.exact_evaluations.dtype == jnp.int32


def test_low_level_pieces_give_the_same_numbers():
    est, key = energy(poor_gaussian_energy, GAUSS), jax.random.key(3)
    alg = delayed_acceptance(GAUSS, est, 0.3, substeps=3, kernel="rmh")
    by_alg = jax.jit(alg.step)(key, alg.init(jnp.zeros(2)))
    kernel = jax.jit(da_module.build_kernel(3, "rmh"), static_argnums=(2, 3))
    by_kernel = kernel(key, da_module.init(jnp.zeros(2), GAUSS, est, "rmh"), GAUSS, est, 0.3)
    for a, b in zip(jax.tree.leaves(by_alg), jax.tree.leaves(by_kernel), strict=True):
        np.testing.assert_array_equal(a, b)
