"""Paired differences: no false alarm without an effect (at the stated level), detection when
the effect is there, and a minimal detectable difference that matches the detection rate."""

from __future__ import annotations

import numpy as np
import pytest

from uqmcmc._arviz import make_idata
from uqmcmc.diagnostics import paired_differences
from uqmcmc.diagnostics.hypothesis import detection_power

REPEATS, LEVEL = 200, 0.05

#: Statistical: 200 repeats of paired chain sets each.
pytestmark = pytest.mark.slow


def _ar1(rng, shift, chains=4, n=500, rho=0.7):
    noise = rng.normal(size=(chains, n))
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0] / np.sqrt(1 - rho**2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + noise[:, t]
    return make_idata({"x": shift + x})


def _table(shift, seed=0):
    rng = np.random.default_rng(seed)
    pairs = {
        (f"r{i}", "effect"): (_ar1(rng, shift), _ar1(rng, 0.0)) for i in range(REPEATS)
    }  # fmt: skip
    return paired_differences(pairs, ["x"], level=LEVEL)


def test_no_effect_alarms_at_the_stated_level():
    table = _table(0.0)
    rate = table["detected"].mean()
    assert abs(rate - LEVEL) < 3 * np.sqrt(LEVEL * (1 - LEVEL) / REPEATS), rate


def test_an_effect_is_detected_as_often_as_its_power_predicts():
    shift = 0.25
    table = _table(shift, seed=1)
    predicted = float(np.mean(detection_power(shift, table["error"].to_numpy(), LEVEL)))
    observed = float(table["detected"].mean())
    assert 0.3 < predicted < 0.95, predicted
    assert abs(observed - predicted) < 3 * np.sqrt(predicted * (1 - predicted) / REPEATS)
    big = _table(1.0, seed=2)
    assert big["detected"].all() and (big["verdict"] == "detected").all()
