"""Uncertainty-driven active learning (uqmcmc.workflows.active_learning): the selection logic
on a stand-in whose variance is known, a positive control (a domain-shifted start improves)
and a negative control (an infinite threshold labels nothing)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc.targets import Phi4
from uqmcmc.uq.acquisition import calibrate_threshold, select_uncertain, uncertainty_scores
from uqmcmc.uq.registry import BackendSettings
from uqmcmc.workflows import make_dataset
from uqmcmc.workflows.active_learning import (
    ActiveLearningConfig,
    ActiveLearningResult,
    run_active_learning,
)

TARGET = Phi4(L=4, beta=0.5, g=1.0)


class KnownVariance:
    """A stand-in backend: mean 0, epistemic variance ``x**2`` per site (so a configuration's
    score is its mean of ``x**2``), and a larger aleatoric part that ``epistemic_only`` drops."""

    def predict_mean_var(self, x, *, epistemic_only=False):
        var = x**2 if epistemic_only else x**2 + 100.0
        return jnp.zeros_like(x), var

    def predict_draws(self, key, x, n):
        return jnp.sqrt(x**2) * jax.random.normal(key, (n, *x.shape))


def test_selection_picks_exactly_the_configurations_above_the_threshold():
    rng = np.random.default_rng(0)
    chains, draws = 3, 40
    positions = (
        rng.normal(size=(chains, draws, 4, 4))
        * rng.uniform(0.2, 2.0, (chains, draws))[..., None, None]
    )
    positions[1, 5] = positions[1, 4]  # a rejected step: the same configuration twice
    backend = KnownVariance()
    scores = uncertainty_scores(backend, positions.reshape(-1, 4, 4), batch_size=16)
    np.testing.assert_allclose(scores, np.mean(positions**2, axis=(-2, -1)).ravel(), rtol=1e-6)
    scores = scores.reshape(chains, draws)

    train = positions[0, :20]  # the threshold: a quantile of the training inputs' scores
    threshold = calibrate_threshold(backend, train, 0.75)
    assert threshold == pytest.approx(np.quantile(np.mean(train**2, axis=(-2, -1)), 0.75))

    selected, flagged = select_uncertain(positions, scores, threshold, max_new=10_000)
    np.testing.assert_array_equal(flagged, scores > threshold)
    expected = set(np.flatnonzero(scores.ravel() > threshold).tolist())
    if scores[1, 4] > threshold:  # the duplicate counts once (its first occurrence)
        expected.discard(1 * draws + 5)
    assert set(selected.tolist()) == expected
    assert np.all(scores.ravel()[selected] > threshold)

    capped, _ = select_uncertain(positions, scores, threshold, max_new=5)
    assert len(capped) == 5 and set(capped.tolist()) <= expected
    assert capped[0] == min(expected) and capped[-1] == max(expected)  # spread over the chains
    assert select_uncertain(positions, scores, math.inf, max_new=5)[0].size == 0
    assert select_uncertain(positions, scores, threshold, max_new=0)[0].size == 0


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="quantile"):
        ActiveLearningConfig(quantile=-0.1)
    with pytest.raises(ValueError, match="unknown backend"):
        ActiveLearningConfig(backend="no-such-backend")
    with pytest.raises(ValueError, match="threshold"):
        ActiveLearningConfig(threshold=-1.0)
    with pytest.raises(ValueError, match="positions"):
        select_uncertain(np.zeros((2, 3, 4)), np.zeros((3, 2)), 0.0, 1)


def _tiny(**kw) -> ActiveLearningConfig:
    base = dict(
        chains=2, steps=150, warmup=50, max_new=10, backend="ensemble",
        settings=BackendSettings(n_members=3, epochs=40), n_test=16, reference_steps=200,
        reference_warmup=50, delayed=False, seed=1,
    )  # fmt: skip
    return ActiveLearningConfig(**{**base, **kw})


@pytest.mark.slow
def test_positive_control_domain_shift_improves():
    """8 training configurations from beta = 0.1 (a much narrower field distribution than the
    target's beta = 0.5); three rounds of labelling where the surrogate is unsure must lower
    the test error of grad S at the target by at least 20%, or the flagged fraction by at
    least a third (the direction only: the numbers depend on the seed)."""
    shifted = make_dataset(Phi4(L=4, beta=0.1, g=1.0), 3, 10, n_test=2).train
    result = run_active_learning(TARGET, _tiny(rounds=3), initial=shifted)
    t = result.table
    assert isinstance(result, ActiveLearningResult)
    assert t["round"].tolist() == [0, 1, 2, 3]
    assert t["n_train"].is_monotonic_increasing and t["n_train"].iloc[-1] > 8
    assert (t["n_train"].diff().dropna().to_numpy() == t["n_new"].iloc[:-1].to_numpy()).all()
    assert t["exact_labels"].iloc[-1] == len(result.train) == t["n_train"].iloc[-1]
    assert t["flagged_fraction"][0] > 0.3  # the shifted start is unsure along the chain
    err, flagged = t["test_rel_error"], t["flagged_fraction"]
    assert err.iloc[-1] < 0.8 * err[0] or flagged.iloc[-1] < flagged[0] * 2 / 3, t
    assert np.isfinite(t[["frozen_abs_m", "frozen_abs_m_err", "frozen_sd", "frozen_sd_err"]]).all(
        axis=None
    )
    assert len(result.plot_rounds().axes) == 2


@pytest.mark.slow
def test_negative_control_infinite_threshold_adds_nothing():
    start = make_dataset(TARGET, 4, 10, n_test=2).train
    result = run_active_learning(TARGET, _tiny(rounds=2, threshold=math.inf), initial=start)
    t = result.table
    assert t["n_new"].tolist() == [0, 0, 0] and t["flagged_steps"].tolist() == [0, 0, 0]
    assert t["n_train"].tolist() == [8, 8, 8] and t["exact_labels"].tolist() == [8, 8, 8]
    assert t["refit"].tolist() == ["initial", "unchanged", "unchanged"]
    assert result.train is start  # the training set is the very one passed in
    assert t["test_rel_error"].nunique() == 1  # the backend was never refitted


@pytest.mark.slow
def test_warm_start_and_delayed_acceptance_columns():
    """The last layer is warm-started; the delayed-acceptance chain reports its cost."""
    result = run_active_learning(
        TARGET,
        _tiny(rounds=1, backend="last_layer", settings=BackendSettings(epochs=20), delayed=True),
    )
    t = result.table
    assert t["refit"].tolist() == ["initial", "warm" if t["n_new"][0] else "unchanged"]
    for col in ("da_exact_evals", "da_evals_per_ess_abs_m", "da_ratio_sd"):
        assert np.all(np.isfinite(t[col])) and np.all(t[col] > 0), col
    assert set(result.baseline) == {"abs_m", "sd"}
