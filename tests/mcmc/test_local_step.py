"""Position-dependent Langevin steps chosen from predicted variance: exact in plain MALA and in
delayed acceptance (short and general corrections), and detectably wrong when the reverse step
or the normalising constants are left out.

Every statistical check is ``|estimate - truth| / MCSE < 4`` (ArviZ's ESS-aware MCSE over many
chains); the broken variants assert that the same check FAILS (some ``|z| > 4``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _standins import StandIn, sample, z_vs_reference

from uqmcmc.mcmc import EnergyDelta, ExactDelta, GradientDelta, NoPenalty
from uqmcmc.mcmc.delayed_acceptance import as_top_level_api as delayed_acceptance
from uqmcmc.mcmc.estimators import standard_normal
from uqmcmc.mcmc.local_step import VarianceCappedStep, local_langevin, predicted_variance
from uqmcmc.mcmc.mala import LANGEVIN, _log_q
from uqmcmc.mcmc.metropolis import Proposal, metropolis_algorithm
from uqmcmc.targets import Gaussian

GAUSS = Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.6], [0.6, 2.0]]))
N_CHAINS, N_STEPS, WARMUP = 64, 2000, 100

#: A strongly position-dependent step: 8x smaller at |x - c| = 2 than at the centre c.
RULE = VarianceCappedStep(lambda x: 1.5 * jnp.sum((x - jnp.array([0.0, -1.5])) ** 2), cap=0.5)


def curl_gradient(x):
    """A non-conservative gradient field around a wrong centre (no density)."""
    return jnp.array([[0.7, 0.4], [-0.4, 0.9]]) @ (x - jnp.array([1.0, -0.5]))


def poor_energy(x):
    return 0.25 * jnp.sum((x - jnp.array([1.5, -1.0])) ** 2)


def z_scores(alg, key=0):
    mom = GAUSS.moments()
    mean = jnp.asarray(mom["mean"])
    x0 = mean + standard_normal(jax.random.key(100 + key), (N_CHAINS, 2))
    obs, info = sample(
        alg, jax.random.key(key), x0, N_STEPS, lambda x: jnp.concatenate([x, (x - mean) ** 2]),
        warmup=WARMUP,
    )  # fmt: skip
    truths = np.concatenate([mom["mean"], mom["var"]])
    return np.asarray([z_vs_reference(obs[..., i], (float(t), 0.0)) for i, t in
                       enumerate(truths)]), info  # fmt: skip


# -- broken proposals: the two ways to get a position-dependent step wrong -----------------------
def _broken(drop: str) -> Proposal:
    def log_q_ratio(state, proposed, step_size):
        x, y = state.position, proposed.position
        eps_x, eps_y = RULE(step_size, x), RULE(step_size, y)
        if drop == "reverse step":  # the bug: e(x) in both directions
            return _log_q(x, y, proposed.cache.grad, eps_x) - _log_q(y, x, state.cache.grad, eps_x)
        # the bug: no normalising constants (d / 2) log e
        return _log_q(x, y, proposed.cache.grad, eps_y) - _log_q(y, x, state.cache.grad, eps_x)

    def propose(key, state, step_size):
        return LANGEVIN.propose(key, state, RULE(step_size, state.position))

    return Proposal(propose, log_q_ratio, with_grad=True)


def _mala(proposal, step):
    return metropolis_algorithm(proposal, ExactDelta(GAUSS), step, NoPenalty())


@pytest.mark.slow
def test_local_mala_is_exact_and_the_broken_ratios_are_detected():
    z, info = z_scores(_mala(local_langevin(RULE), 0.8))
    assert np.all(np.abs(z) < 4), z
    assert 0.2 < float(info.acceptance_rate.mean()) < 0.95
    for drop in ("reverse step", "normalisers"):
        z_bad, _ = z_scores(_mala(_broken(drop), 0.8))
        assert np.max(np.abs(z_bad)) > 4, (drop, z_bad)


DA_CASES = {
    # the general correction (gradient surrogate, k = 1): the rule enters both q densities
    "grad-general-k1": (GradientDelta(StandIn(curl_gradient, (2,)), rule="first-order"), 1, 0.8),
    # the short correction (energy surrogate, k = 8): every sub-step reversible for exp(-S-bar)
    "energy-short-k8": (EnergyDelta(StandIn(poor_energy, (2,)), mode="mean"), 8, 0.4),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(DA_CASES))
def test_delayed_acceptance_with_a_local_step_is_exact(case):
    est, k, step = DA_CASES[case]
    alg = delayed_acceptance(GAUSS, est, step, substeps=k, step_rule=RULE)
    z, info = z_scores(alg, key=1)
    assert np.all(np.abs(z) < 4), z
    assert 0.05 < float(info.correction_acceptance.mean()) < 0.95  # the correction works
    steps = np.asarray(info.step_size)
    assert steps.max() > 3 * steps.min()  # and the step really moved with the state
    assert np.all(steps <= step + 1e-6)


def test_constant_rule_is_plain_langevin_and_variance_of_zero_keeps_the_step():
    est = ExactDelta(GAUSS)
    x, y = jnp.array([0.3, -0.2]), jnp.array([-0.1, 0.4])
    sx, sy = LANGEVIN.init(x, est), LANGEVIN.init(y, est)
    flat = local_langevin(VarianceCappedStep(lambda x: jnp.zeros(()), cap=1.0))
    assert float(flat.log_q_ratio(sx, sy, 0.2)) == pytest.approx(
        float(LANGEVIN.log_q_ratio(sx, sy, 0.2)), rel=1e-6
    )
    key = jax.random.key(3)
    assert jnp.allclose(flat.propose(key, sx, 0.2), LANGEVIN.propose(key, sx, 0.2))


def test_the_cap_bounds_the_predicted_variance_of_a_move():
    # 2 e(x) v(x) <= cap, and -> cap where v is large
    rule = VarianceCappedStep(lambda x: jnp.sum(x**2), cap=0.3)
    for v in (0.1, 10.0, 1e4):
        x = jnp.array([np.sqrt(v), 0.0])
        predicted = 2 * float(rule(0.5, x)) * v
        assert predicted <= 0.3 + 1e-6
    assert predicted == pytest.approx(0.3, rel=1e-3)


def test_predicted_variance_sums_a_backends_variance():
    class Backend:
        def predict_mean_var(self, x):
            return x, jnp.full(x.shape, 0.25)

    assert float(predicted_variance(Backend())(jnp.zeros((3, 3)))) == pytest.approx(2.25)


def test_delayed_acceptance_records_the_variance_and_step():
    est = GradientDelta(StandIn(curl_gradient, (2,)), rule="first-order")
    alg = delayed_acceptance(GAUSS, est, 0.5, step_rule=RULE)
    state = alg.init(jnp.array([2.0, 1.0]))
    _, info = jax.jit(alg.step)(jax.random.key(0), state)
    assert float(info.step_size) == pytest.approx(float(RULE(0.5, state.position)), rel=1e-5)
    assert float(info.delta_var) >= 0.0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"kernel": "rmh", "step_rule": RULE}, "needs kernel='mala'"),
        ({"step_rule": 0.3}, "must be callable"),
    ],
)
def test_refusals(kwargs, error):
    est = EnergyDelta(StandIn(poor_energy, (2,)), mode="mean")
    with pytest.raises((ValueError, TypeError), match=error):
        delayed_acceptance(GAUSS, est, 0.5, **kwargs)
