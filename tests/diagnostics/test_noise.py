"""The after-the-run noise check (uqmcmc.diagnostics.noise.check_noise)."""

import warnings

import numpy as np
import pytest

from uqmcmc.diagnostics.noise import check_noise
from uqmcmc.mcmc import NoisyInfo


def test_check_noise_warns_once_above_threshold():
    with pytest.warns(UserWarning, match="2 Phi") as record:
        sigma = check_noise({"delta_var": np.full((4, 50), 6.25)})
    assert sigma == pytest.approx(2.5) and len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_noise(np.full((4, 50), 1.0)) == pytest.approx(1.0)
        assert np.isnan(check_noise(np.full(3, np.nan)))


def test_check_noise_reads_a_stacked_info():
    zeros = np.zeros((2, 10))
    info = NoisyInfo(zeros, zeros, zeros, np.full((2, 10), 0.25), zeros, zeros, zeros)
    assert check_noise(info) == pytest.approx(0.5)
    assert check_noise(info._asdict()) == pytest.approx(0.5)
