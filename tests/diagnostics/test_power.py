"""The power statement is honest: a planted heating is detected as often as predicted.

Each repeat is a set of exact checkerboard chains on ``Tempered(Phi4(4, 0.5, 1), 1 + delta)``:
the thermometer ``sd`` (expectation ``T``, by integration by parts) is biased by exactly
``delta``. Over many repeats the fraction flagged by :func:`compare_to_exact` must match the
mean power that the table's own ``mdb`` (minimal detectable bias) column implies, within 3
binomial standard errors; with no heating the false-alarm rate must match ``level``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

from uqmcmc.diagnostics import compare_to_exact
from uqmcmc.diagnostics.hypothesis import detection_power, minimal_detectable_bias
from uqmcmc.mcmc import checkerboard, run_chains
from uqmcmc.targets import Phi4, Tempered

REPEATS, CHAINS, STEPS, LEVEL, POWER = 64, 8, 1000, 0.05, 0.8
TARGET = Phi4(4, 0.5, 1.0)


def _repeats(temperature: float, seed: int) -> dict:
    """``REPEATS`` independent chain sets at ``temperature``, as runs of the original target."""
    alg = checkerboard(Tempered(TARGET, temperature), 1.0)
    idata = run_chains(
        alg, seed, jnp.zeros((REPEATS * CHAINS, 4, 4)), STEPS, warmup=200, target=TARGET,
        progress=False,
    )  # fmt: skip
    post = idata.posterior["sd"].values  # (REPEATS * CHAINS, draws)
    from uqmcmc._arviz import make_idata

    return {
        f"r{i}": make_idata({"sd": post[i * CHAINS : (i + 1) * CHAINS]}, attrs=TARGET.params)
        for i in range(REPEATS)
    }


def _rates(runs: dict, delta: float, err_scale: float = 1.0) -> tuple[float, float, float]:
    """Observed detection rate, the predicted one from the ``mdb`` column, and its binomial
    standard error. ``err_scale`` rescales the error the prediction uses (a broken formula)."""
    table = compare_to_exact(runs, {"sd": 1.0}, observables=["sd"], distributions=[],
                             level=LEVEL, power=POWER)  # fmt: skip
    observed = float(np.mean(~table["pass"].astype(bool)))
    # The table's mdb is (z_c + z_power) * bias_err: recover the standard error it stands for.
    z_c, z_p = sps.norm.isf(LEVEL / 2), sps.norm.ppf(POWER)
    assert np.allclose(table["mdb"], minimal_detectable_bias(table["bias_err"], LEVEL, 1, POWER))
    se = table["mdb"].to_numpy() / (z_c + z_p) * err_scale
    predicted = float(np.mean(detection_power(delta, se, LEVEL)))
    return observed, predicted, float(np.sqrt(predicted * (1 - predicted) / REPEATS))


@pytest.fixture(scope="module")
def heated():
    return _repeats(1.035, seed=1)


@pytest.mark.slow
def test_planted_heating_is_detected_as_often_as_predicted(heated):
    observed, predicted, se = _rates(heated, 0.035)
    assert 0.3 <= predicted <= 0.9, predicted  # the design is informative at this delta
    assert abs(observed - predicted) < 3 * se, (observed, predicted, se)


@pytest.mark.slow
def test_a_broken_power_formula_is_caught(heated):
    """With the standard error doubled (an MCSE formula off by 2x) the prediction misses."""
    observed, predicted, se = _rates(heated, 0.035, err_scale=2.0)
    assert abs(observed - predicted) > 3 * se, (observed, predicted, se)


@pytest.mark.slow
def test_no_heating_alarms_at_the_stated_level():
    observed, predicted, se = _rates(_repeats(1.0, seed=2), 0.0)
    assert predicted == pytest.approx(LEVEL)
    assert abs(observed - LEVEL) < 3 * se, observed
