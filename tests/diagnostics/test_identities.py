"""Exact Stein identities: pass on exact chains, flag biased ones, at a counted gradient cost."""

import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc import _arviz
from uqmcmc.diagnostics import IDENTITIES, check_identities, stein_terms
from uqmcmc.mcmc import checkerboard, run_chains
from uqmcmc.targets import Gaussian, Phi4

EXACT = Phi4(4, 0.5, 1.0)


def _positions(beta: float, seed: int):
    sampler = checkerboard(Phi4(4, beta, 1.0), 1.0)
    return run_chains(
        sampler,
        seed,
        jnp.zeros((16, 4, 4)),
        1000,
        warmup=100,
        target=EXACT,
        record_positions=True,
        progress=False,
    )


@pytest.fixture(scope="module")
def phi4_table():
    runs = {"exact": _positions(0.5, 0), "biased": _positions(0.55, 1)}
    return check_identities(EXACT, runs, num_positions=100).set_index(["run", "identity"])


@pytest.mark.slow
def test_exact_phi4_chain_satisfies_every_identity(phi4_table):
    rows = phi4_table.loc["exact"]
    assert list(rows.index) == list(IDENTITIES)
    assert not rows["flagged"].any()
    assert (rows["z"].abs() < 4).all(), rows["z"]
    assert (rows["n_grad_evals"] == 16 * 100).all()
    assert rows.loc["x_grad", "rhs"] == pytest.approx(1.0)


def test_biased_phi4_chain_is_flagged(phi4_table):
    rows = phi4_table.loc["biased"]
    assert rows["flagged"].any()
    # Over seeds 1-6 of this set-up, x_grad's z is 3.2 ± 1.1 and nbr_grad's 6.8 ± 0.7: the
    # neighbour identity is the one that flags a wrong beta; x_grad only points the same way.
    assert rows.loc["x_grad", "z"] > 1
    assert rows.loc["nbr_grad", "flagged"] and rows.loc["nbr_grad", "z"] > 4


def test_sd_identity_is_the_schwinger_dyson_observable():
    phi = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    lhs, rhs = stein_terms(EXACT.grad, jnp.asarray(phi), ["x_grad"])["x_grad"]
    assert float(lhs) == pytest.approx(float(EXACT.observables(phi)["sd"]), rel=1e-6)
    assert float(rhs) == 1.0


def _gaussian_draws(rng, cov, shift=0.0, scale=1.0):
    chol = np.linalg.cholesky(cov)
    return shift + scale * (rng.normal(size=(4, 250, 3)) @ chol.T)


def test_gaussian_identities_detect_mean_and_scale_errors():
    cov = np.array([[1.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 0.5]])
    target = Gaussian(np.zeros(3), cov)
    rng = np.random.default_rng(1)
    runs = {
        "iid": _gaussian_draws(rng, cov),
        "shifted": _gaussian_draws(rng, cov, shift=0.15),
        "wide": _gaussian_draws(rng, cov, scale=1.1),
    }
    table = check_identities(target, runs, num_positions=250).set_index(["run", "identity"])
    assert not table.loc["iid", "flagged"].any()
    assert (table.loc["iid", "z"].abs() < 4).all()
    # a shifted mean is seen by <dS/dx> = 0 (first order in the shift), not by <x dS/dx> = 1
    assert table.loc[("shifted", "grad"), "z"] > 4
    assert table.loc[("shifted", "grad"), "flagged"]
    # a too-wide distribution is seen by <x dS/dx> = 1
    assert table.loc[("wide", "x_grad"), "z"] > 4


def test_bad_input():
    idata = _arviz.make_idata({"m": np.zeros((2, 10))})
    with pytest.raises(ValueError, match="record_positions"):
        check_identities(EXACT, {"a": idata})
    with pytest.raises(ValueError, match="identities"):
        check_identities(EXACT, {"a": np.zeros((2, 10, 4, 4))}, identities=["nope"])
    with pytest.raises(ValueError, match="num_positions"):
        check_identities(EXACT, {"a": np.zeros((2, 10, 4, 4))}, num_positions=2)
    with pytest.raises(ValueError, match="runs"):
        check_identities(EXACT, np.zeros((2, 10, 4, 4)))
    with pytest.raises(TypeError, match="grad"):
        check_identities(object(), {"a": np.zeros((2, 10, 4, 4))})
