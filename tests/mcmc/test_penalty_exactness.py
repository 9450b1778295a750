"""The Ceperley-Dewing penalty makes noisy Delta S exact; without it the noise biases the chain.

Noisy oracles (exact value plus fresh Gaussian noise) against known answers: the analytic
moments of a Gaussian and a double well, and the exact phi^4 reference. Each program runs many
chains under ``vmap``, and one compilation covers several noise levels (``sigma`` traced).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _standins import equilibrated_phi4, phi4_reference, sample, z_vs_reference

from uqmcmc.mcmc import (
    CeperleyDewing,
    NoisyOracle,
    Switch,
    batched,
    rmh,
    run_chains,
    split_batched,
)
from uqmcmc.mcmc.estimators import standard_normal
from uqmcmc.targets import DoubleWell, Gaussian, Phi4

#: Long statistical tests: many chains per program, tolerance in MCSE units.
pytestmark = pytest.mark.slow

GAUSS = Gaussian(jnp.array([0.5, -1.0]), jnp.array([[1.0, 0.6], [0.6, 2.0]]))
WELL = DoubleWell(dim=1, barrier=1.0, tilt=0.3)
TARGETS = {"gaussian": (GAUSS, 1.2), "double_well": (WELL, 1.0)}
N_CHAINS, N_STEPS = 128, 3000


def run_oracle(name, sigmas, acceptance, n_draws=None):
    """z-scores (sigma, observable) of coordinate means and variances vs the exact moments."""
    target, eps = TARGETS[name]
    mom = target.moments()
    mean = jnp.asarray(mom["mean"])
    truth = np.concatenate([mom["mean"], mom["var"]])
    x0 = mean + standard_normal(jax.random.key(1), (N_CHAINS, *target.shape))

    def build(sigma):
        return rmh(NoisyOracle(target, sigma, n_draws=n_draws), eps, acceptance=acceptance)

    def observe(x):
        return jnp.concatenate([x, (x - mean) ** 2])

    obs, info = sample(build, jax.random.key(2), x0, N_STEPS, observe, warmup=200, params=sigmas)
    z = np.array(
        [
            [z_vs_reference(obs[s][..., i], (t, 0.0)) for i, t in enumerate(truth)]
            for s in range(len(sigmas))
        ]
    )
    return z, info


@pytest.mark.parametrize("name", list(TARGETS))
def test_ceperley_dewing_with_known_sigma_is_exact(name):
    z, info = run_oracle(name, [0.5, 1.0, 2.0], "ceperley-dewing")
    assert np.all(np.abs(z) < 4), z
    np.testing.assert_allclose(info.penalty[2], 2.0, rtol=1e-6)  # u = sigma^2 / 2


@pytest.mark.parametrize("name", list(TARGETS))
def test_no_penalty_inflates_the_variance(name):
    z, info = run_oracle(name, [2.0], "none")
    n_dim = TARGETS[name][0].shape[0]
    assert np.all(z[0, n_dim:] > 4), z  # every variance is too large: the noise heats the chain
    assert np.all(info.penalty == 0)


@pytest.mark.parametrize("name", list(TARGETS))
def test_estimated_sigma_from_ten_draws_is_exact(name):
    z, info = run_oracle(name, [0.5, 1.0], "ceperley-dewing-estimated", n_draws=10)
    assert np.all(np.abs(z) < 4), z
    assert info.out_of_range.sum() == 0  # chi^2 never reaches 5.4 at sigma <= 1


# -- phi^4 with a per-site noisy gradient, integrated by trapezoid or simpson ------------------
PHI4 = Phi4(L=4, beta=0.5, g=1.0)


def test_batched_rule_pair_behaves_as_each_rule_alone():
    """The naive and penalised rules side by side in ONE program (``Switch`` under
    ``batched``, through ``run_chains`` and ``split_batched``, as ``uqmcmc compare`` runs them):
    the penalised half is exact, the naive half is heated by the noise."""
    target, eps = TARGETS["gaussian"]
    mom = target.moments()
    mean = jnp.asarray(mom["mean"])
    alg = batched(
        jnp.array([False, True]),
        lambda on: rmh(NoisyOracle(target, 2.0), eps, Switch(CeperleyDewing(), on)),
    )
    x0 = mean + standard_normal(jax.random.key(1), (N_CHAINS, 2, *target.shape))
    idata = run_chains(
        alg, 3, x0, N_STEPS, warmup=200, observables=lambda x: {"d2": (x - mean) ** 2},
        progress=False,
    )  # fmt: skip
    naive, cd = split_batched(idata, [{"acceptance": "none"}, {"acceptance": "cd"}])
    z = {
        name: [z_vs_reference(run.posterior["d2"].values[..., i], (v, 0.0))
               for i, v in enumerate(mom["var"])]
        for name, run in (("naive", naive), ("cd", cd))
    }  # fmt: skip
    assert np.all(np.abs(z["cd"]) < 4), z
    assert np.all(np.array(z["naive"]) > 4), z
    assert float(naive.sample_stats["penalty"].max()) == 0.0
    np.testing.assert_allclose(cd.sample_stats["penalty"].values, 2.0, rtol=1e-6)


OBS = ("abs_m", "m2", "action_density")
# (sigma per site of the gradient, step): the penalised chains have sd(Delta S-hat) ~ 1.7.
# Trapezoid needs a small step: its own quadrature bias shows at eps = 0.3 (checked below).
NOISY = {"simpson": (2.0, 0.3), "trapezoid": (6.0, 0.1)}


def run_phi4(rule, acceptance, params):
    ref = phi4_reference(PHI4)
    x0 = equilibrated_phi4(PHI4, N_CHAINS)

    def build(p):
        return rmh(NoisyOracle(PHI4, p[0], on="grad", rule=rule), p[1], acceptance=acceptance)

    def observe(phi):
        o = PHI4.observables(phi)
        return jnp.stack([o[k] for k in OBS])

    obs, info = sample(build, jax.random.key(3), x0, 4000, observe, warmup=100, params=params)
    z = np.array(
        [
            [z_vs_reference(obs[p][..., i], ref[k]) for i, k in enumerate(OBS)]
            for p in range(len(params))
        ]
    )
    return z, info


@pytest.mark.slow
@pytest.mark.parametrize("rule", list(NOISY))
def test_phi4_gradient_oracle_penalty_matches_exact_chain(rule):
    z, info = run_phi4(rule, "ceperley-dewing", [NOISY[rule], (0.0, 0.3)])
    assert np.all(np.abs(z[0]) < 4), z
    assert 1.2 < np.sqrt(np.median(info.delta_var[0])) < 2.5  # the noise is substantial
    if rule == "simpson":  # noise-free simpson is the exact chain even at a large step
        assert np.all(np.abs(z[1]) < 4), z
    else:  # noise-free trapezoid at eps = 0.3 is biased by its quadrature alone (DESIGN.md)
        assert z[1, 0] < -4, z


@pytest.mark.parametrize("rule", list(NOISY))
def test_phi4_gradient_oracle_without_penalty_is_biased(rule):
    z, _ = run_phi4(rule, "none", [NOISY[rule]])
    assert z[0, 2] > 4, z  # the noise heats the chain: the action density rises
