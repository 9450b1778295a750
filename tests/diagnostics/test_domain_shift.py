"""The out-of-range check of a chain against a backend's calibrated range: its false-alarm rate
on in-distribution chains (negative control), its detection of a shifted chain (positive
control), and the calibration of its error on autocorrelated chains."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from uqmcmc.diagnostics.domain_shift import _detectable, out_of_range


def ar1(rng, rho: float, shape: tuple[int, int]) -> np.ndarray:
    """Standard-normal AR(1) chains ``(chain, draw)`` with autocorrelation ``rho``."""
    e = rng.normal(size=shape)
    x = np.empty(shape)
    x[:, 0] = e[:, 0]
    for t in range(1, shape[1]):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
    return x


def test_chains_like_the_reference_are_rarely_flagged():
    """Negative control: 400 reference sets of 20 and autocorrelated chains (rho 0.9) from the
    same distribution. The check's false-alarm rate is at most 1 - level = 1 % by construction
    (plus the error margin's slack); 12 of 400 would be a rate of 3 %."""
    rng = np.random.default_rng(1)
    flagged = sum(
        out_of_range(np.exp(rng.normal(size=20)), np.exp(ar1(rng, 0.9, (4, 500)))).out_of_range
        for _ in range(400)
    )
    assert flagged <= 12, flagged


def test_a_shifted_chain_is_flagged_and_its_share_estimated():
    """Positive control: the chain's scores shifted by 3 standard deviations (on a log scale)
    from 20 reference ones (a share of about 0.5 beyond their largest). Flagged in every
    repetition, and the share agrees with the exact exceedance probability of that reference
    set within 4 of its stated errors."""
    rng = np.random.default_rng(2)
    z = []
    for _ in range(50):
        reference = rng.normal(size=20)
        result = out_of_range(np.exp(reference), np.exp(3.0 + ar1(rng, 0.9, (4, 500))))
        assert result.out_of_range
        truth = stats.norm.sf(reference.max() - 3.0)
        z.append((result.fraction - truth) / result.error)
    assert np.max(np.abs(z)) < 4, np.max(np.abs(z))


def test_the_error_follows_the_spread_of_the_share_on_autocorrelated_chains():
    """The stated error (from the scores' ESS) against the spread of the share over 300
    repetitions with a fixed threshold: within 30 %. Counting every draw as independent
    (rho 0.95: about 40 times too many) would understate it about 6-fold."""
    rng = np.random.default_rng(3)
    reference = np.array([0.0, 0.5, 1.0])  # threshold 1: share sf(1) = 0.159
    results = [out_of_range(reference, ar1(rng, 0.95, (4, 1000))) for _ in range(300)]
    spread = np.std([r.fraction for r in results])
    stated = np.mean([r.error for r in results])
    assert 0.7 < stated / spread < 1.3, (stated, spread)


def test_the_limit_expected_share_and_power_follow_their_definitions():
    r = out_of_range(np.arange(20.0), np.zeros((4, 100)))
    assert r.expected == pytest.approx(1 / 21)
    assert r.limit == pytest.approx(stats.beta(1, 20).ppf(0.99))
    p, ess = _detectable(r.limit, 250.0, 2.0), 250.0
    assert p - 2 * np.sqrt(p * (1 - p) / ess) == pytest.approx(r.limit)
    assert _detectable(r.limit, 1e9, 2.0) == pytest.approx(r.limit, rel=1e-3)


def test_a_broken_prediction_counts_as_out_of_range_and_bad_input_is_refused():
    scores = np.zeros((2, 10))
    scores[0, 0] = np.nan
    assert out_of_range([1.0], scores).fraction == pytest.approx(0.05)
    with pytest.raises(ValueError, match="chain, draw"):
        out_of_range([1.0], np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        out_of_range([np.nan], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="level"):
        out_of_range([1.0], np.zeros((2, 5)), level=1.0)
