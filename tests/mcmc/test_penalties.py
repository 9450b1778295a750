"""Penalties: the estimated-variance series, the penalty objects and rule names, the
Metropolis step (fast; the statistical exactness of the rules is in test_penalty_exactness.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import hyp0f1

from uqmcmc.mcmc import (
    RULES,
    CeperleyDewing,
    CeperleyDewingEstimated,
    NoisyInfo,
    NoisyState,
    NoPenalty,
    Switch,
    as_penalty,
)
from uqmcmc.mcmc.estimators import Cache, DeltaEstimate, standard_normal
from uqmcmc.mcmc.hyp0f1 import estimated_penalty, estimated_penalty_limit
from uqmcmc.mcmc.metropolis import metropolis_step


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20, 40, 100])
def test_closed_form_matches_float64_hypergeometric(n):
    m = (n - 1) / 2
    limit = estimated_penalty_limit(n)
    chi2 = np.linspace(0.0, 1.3 * limit, 801)
    u, valid = estimated_penalty(jnp.asarray(chi2, dtype=jnp.float32), n)
    u, valid = np.asarray(u), np.asarray(valid)
    reference = hyp0f1(m, -m * chi2 / 2)  # exp(-u_B), float64
    assert not np.any(valid[chi2 > limit * (1 + 1e-6)]) and np.all(np.isinf(u[~valid]))
    # valid wherever the acceptance factor is not negligible (float32 may drop f < 1e-4)
    assert np.all(valid[(chi2 <= limit) & (reference > 1e-3)])
    assert np.all(reference[valid] > 0)
    # the acceptance factor exp(-u_B) to 1e-4 absolute; u_B itself relative where it matters
    np.testing.assert_allclose(np.exp(-u[valid]), reference[valid], atol=1e-4)
    small = valid & (reference > 1e-2)
    np.testing.assert_allclose(u[small], -np.log(reference[small]), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("n", [4, 10])
def test_closed_form_is_the_series(n):
    """u_B = chi2/2 + chi4/(4(n+1)) + chi6/(3(n+1)(n+3)) + O(chi8) (DESIGN.md)."""
    chi2 = np.array([0.1, 0.2])
    third = chi2**3 / (3 * (n + 1) * (n + 3))
    series = chi2 / 2 + chi2**2 / (4 * (n + 1)) + third
    u, valid = estimated_penalty(jnp.asarray(chi2, dtype=jnp.float32), n)
    u = np.asarray(u, dtype=float)
    assert np.all(valid)
    assert np.all(np.abs(u - series) < 0.2 * third)  # remainder O(chi8) is much smaller
    assert np.all(np.abs(u - (series - third)) > 0.5 * third)  # and the chi6 term is resolved


def test_valid_range():
    assert estimated_penalty_limit(10) == pytest.approx(5.4, abs=0.05)
    limits = [estimated_penalty_limit(n) for n in (2, 5, 10, 20, 40)]
    assert np.all(np.diff(limits) > 0)
    assert n_quarter_bounds(limits, (2, 5, 10, 20, 40))
    u, valid = estimated_penalty(jnp.array([6.0, -1.0, jnp.nan]), 10)
    assert not np.any(np.asarray(valid)) and np.all(np.isinf(np.asarray(u)))


def n_quarter_bounds(limits, ns):
    """The first zero lies above n/4 and approaches it from above (ratio falls with n)."""
    ratios = np.array(limits) / (np.array(ns) / 4)
    return bool(np.all(ratios > 1) and np.all(np.diff(ratios) < 0))


@pytest.mark.parametrize("n, sigma2", [(4, 0.5), (10, 1.0)])
def test_estimated_penalty_is_unbiased_for_exp_minus_half_sigma2(n, sigma2):
    """E[exp(-u_B(chi2))] = exp(-sigma^2/2) when chi2 ~ sigma^2 chi2_{n-1}/(n-1) (the defining
    property; m = n/2 instead of (n-1)/2 fails this at z ~ 7)."""
    # n draws of noise sigma * sqrt(n) each; chi2 = sample variance of their mean
    y = np.sqrt(n * sigma2) * standard_normal(jax.random.key(n), (400_000, n))
    chi2 = jnp.var(y, axis=1, ddof=1) / n
    u, valid = jax.jit(estimated_penalty, static_argnums=1)(chi2, n)
    assert float(jnp.mean(valid)) > 0.999  # the range is (almost) no restriction here
    f = np.asarray(jnp.exp(-u), dtype=float)
    z = (f.mean() - np.exp(-sigma2 / 2)) / (f.std(ddof=1) / np.sqrt(f.size))
    assert abs(z) < 4, z


def test_penalty_rules():
    var = jnp.array([0.0, 0.5, 2.0])
    u, valid = as_penalty("none")(var)
    assert np.all(np.asarray(u) == 0) and np.all(np.asarray(valid))
    u, valid = as_penalty("ceperley-dewing")(var)
    np.testing.assert_allclose(u, [0.0, 0.25, 1.0])
    u, valid = as_penalty("ceperley-dewing-estimated", n_draws=10)(var)
    np.testing.assert_allclose(u, np.asarray(estimated_penalty(var, 10)[0]))
    assert set(RULES) == {"none", "ceperley-dewing", "ceperley-dewing-estimated"}


def test_invalid_rules():
    with pytest.raises(ValueError, match="acceptance"):
        as_penalty("barker")
    with pytest.raises(ValueError, match="acceptance must be one of"):
        as_penalty("barker")
    for n in (None, 1, 0, 2.5):
        with pytest.raises(ValueError, match="n_draws"):
            as_penalty("ceperley-dewing-estimated", n_draws=n)
        with pytest.raises(ValueError, match="needs a sample variance"):
            CeperleyDewingEstimated(n)


def _states():
    x = jnp.zeros(2)
    return NoisyState(x, Cache(logdensity=jnp.zeros(()))), NoisyState(x + 1, Cache(jnp.ones(())))


@pytest.mark.parametrize(
    "estimate, rule, flag",
    [
        (
            DeltaEstimate(jnp.asarray(-5.0), jnp.asarray(0.1), jnp.asarray(False)),
            "none",
            "nonfinite",
        ),
        (
            DeltaEstimate(jnp.asarray(-5.0), jnp.asarray(9.0), jnp.asarray(True)),
            "est",
            "out_of_range",
        ),
    ],
)
def test_metropolis_step_rejects_nonfinite_and_out_of_range(estimate, rule, flag):
    state, proposed = _states()
    rule = as_penalty("ceperley-dewing-estimated", 10) if rule == "est" else as_penalty(rule)
    new, info = jax.jit(metropolis_step, static_argnums=4)(
        jax.random.key(0), state, proposed, estimate, rule
    )
    assert float(new.position[0]) == 0.0 and not bool(info.is_accepted)
    assert float(info.acceptance_rate) == 0.0
    other = {"nonfinite": "out_of_range", "out_of_range": "nonfinite"}[flag]
    assert bool(getattr(info, flag)) and not bool(getattr(info, other))  # the right counter


def test_metropolis_step_accepts_downhill_and_reports():
    state, proposed = _states()
    estimate = DeltaEstimate(jnp.asarray(-5.0), jnp.asarray(2.0), jnp.asarray(True))
    new, info = metropolis_step(
        jax.random.key(0), state, proposed, estimate, as_penalty("ceperley-dewing")
    )
    assert isinstance(info, NoisyInfo) and bool(info.is_accepted)
    assert float(new.position[0]) == 1.0 and float(info.penalty) == 1.0
    assert float(new.logdensity) == 1.0


# -- the penalty objects -----------------------------------------------------------------------
def test_rule_names_make_named_penalties():
    made = {rule: as_penalty(rule, n_draws=5) for rule in RULES}
    assert [type(p) for p in made.values()] == [NoPenalty, CeperleyDewing, CeperleyDewingEstimated]
    assert all(p.name == rule for rule, p in made.items())
    assert made["ceperley-dewing-estimated"].n_draws == 5
    assert as_penalty("ceperley-dewing", n_draws=None) == CeperleyDewing()  # n_draws unused
    assert CeperleyDewingEstimated(np.int64(4)) == CeperleyDewingEstimated(4)  # stored as int
    assert isinstance(CeperleyDewingEstimated(4.0).n_draws, int)


def test_penalties_are_immutable_and_pass_through_as_penalty():
    penalty = CeperleyDewingEstimated(4)
    with pytest.raises(AttributeError):
        penalty.n_draws = 7
    assert as_penalty(penalty) is penalty and as_penalty(penalty, n_draws=10) is penalty
    switched = Switch(penalty, True)
    assert as_penalty(switched) is switched

    def custom(var):  # backwards compatibility: any callable var -> (u, valid)
        return 0.25 * var, var >= 0

    assert as_penalty(custom) is custom
    with pytest.raises(ValueError, match="acceptance must be one of"):
        as_penalty(None)
    with pytest.raises(TypeError, match="Switch needs a penalty"):
        Switch("ceperley-dewing", True)


def test_penalty_values_match_the_formulas():
    var = jnp.array([0.0, 0.5, 2.0])
    np.testing.assert_array_equal(NoPenalty()(var)[0], 0.0)
    np.testing.assert_array_equal(CeperleyDewing()(var)[0], 0.5 * var)
    u, valid = CeperleyDewingEstimated(10)(var)
    ref_u, ref_valid = estimated_penalty(var, 10)
    np.testing.assert_array_equal(u, ref_u)
    np.testing.assert_array_equal(valid, ref_valid)
    for penalty in (NoPenalty(), CeperleyDewing()):
        assert penalty(var)[1].dtype == bool and bool(penalty(var)[1].all())


def test_penalties_are_pytrees_with_static_n_draws():
    assert jax.tree.leaves(CeperleyDewingEstimated(6)) == []
    assert jax.tree.leaves(NoPenalty()) == [] and jax.tree.leaves(CeperleyDewing()) == []
    on = jnp.array([False, True])
    assert len(jax.tree.leaves(Switch(CeperleyDewingEstimated(6), on))) == 1  # only `on`
    # through jit as an argument: n_draws stays static, `on` is traced
    apply = jax.jit(lambda penalty, var: penalty(var))
    u, _ = apply(CeperleyDewingEstimated(6), jnp.asarray(0.1))
    assert float(u) == pytest.approx(float(estimated_penalty(jnp.asarray(0.1), 6)[0]))
    u, _ = apply(Switch(CeperleyDewing(), jnp.asarray(False)), jnp.asarray(2.0))
    assert float(u) == 0.0
    # hashable: usable as a static argument, equal by value
    assert hash(CeperleyDewingEstimated(6)) == hash(CeperleyDewingEstimated(6))


def test_switch_under_vmap_runs_both_rules_side_by_side():
    var = jnp.array([0.5, 99.0])  # 99 is out of the estimated rule's range
    pair = Switch(CeperleyDewingEstimated(5), jnp.array([False, True]))
    u, valid = jax.vmap(lambda p: p(var))(pair)
    np.testing.assert_array_equal(u[0], [0.0, 0.0])
    np.testing.assert_array_equal(valid[0], [True, True])  # off: never out of range
    ref_u, ref_valid = estimated_penalty(var, 5)
    np.testing.assert_array_equal(u[1], ref_u)
    np.testing.assert_array_equal(valid[1], ref_valid)
    assert not bool(valid[1, 1]) and np.isinf(u[1, 1])
    # `on` built inside the vmapped function, as `batched` does
    u, _ = jax.vmap(lambda on: Switch(CeperleyDewing(), on)(jnp.asarray(2.0)))(
        jnp.array([True, False])
    )
    assert u.tolist() == [1.0, 0.0]
    assert pair.name == "switch(ceperley-dewing-estimated)"
