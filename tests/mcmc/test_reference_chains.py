"""The exact samplers agree with each other and with the independent phi^4 reference values."""

from __future__ import annotations

import blackjax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc import _arviz
from uqmcmc.mcmc import checkerboard, run_chains
from uqmcmc.targets import Phi4, logdensity_fn

OBS = ("abs_m", "m2", "action_density")
N_CHAINS = 32


def _estimates(idata):
    post = _arviz.group(idata, "posterior")
    return {k: _arviz.summarize(post[k].values) for k in (*OBS, "sd")}


def _z(a, b):
    return abs(a[0] - b[0]) / np.hypot(a[1], b[1])


def _failures(est, ref):
    """Observables whose estimate is more than 4 combined standard errors from ``ref``."""
    out = {}
    for k in OBS:
        z = _z((est[k]["mean"], est[k]["mcse"]), ref[k])
        if z >= 4:
            out[k] = z
    z_sd = abs(est["sd"]["mean"] - 1.0) / est["sd"]["mcse"]
    if z_sd >= 4:
        out["sd"] = z_sd
    return out


def _run(alg, target, steps, seed, warmup=1000, **kw):
    idata = run_chains(
        alg,
        seed,
        jnp.zeros((N_CHAINS, target.L, target.L)),
        steps,
        warmup=warmup,
        target=target,
        progress=False,
        **kw,
    )
    return _estimates(idata)


@pytest.fixture(scope="module")
def chains():
    """Checkerboard, BlackJAX RMH and BlackJAX MALA on phi^4 at L = 4 and 8, beta = 0.5."""
    out = {}
    for L in (4, 8):
        t = Phi4(L, 0.5, 1.0)
        logp = logdensity_fn(t)
        out[L] = {
            "checkerboard": _run(checkerboard(t, 1.0), t, 10_000, 1),
            "rmh": _run(
                lambda s, logp=logp: blackjax.normal_random_walk(logp, s),
                t,
                20_000 if L == 4 else 80_000,
                2,
                warmup=2000,
                thin=1 if L == 4 else 4,
                step_size=0.2,
                target_acceptance=0.3,
            ),
            "mala": _run(
                lambda s, logp=logp: blackjax.mala(logp, s),
                t,
                10_000,
                3,
                step_size=0.05,
                target_acceptance=0.6,
            ),
        }
    return out


@pytest.mark.slow
@pytest.mark.parametrize("L", [4, 8])
@pytest.mark.parametrize("sampler", ["checkerboard", "rmh", "mala"])
def test_matches_reference(chains, phi4_reference, L, sampler):
    est = chains[L][sampler]
    for k in OBS:
        assert est[k]["ess_bulk"] > 400, f"{sampler} {k}: ESS too small for a reliable MCSE"
    assert _failures(est, phi4_reference[(L, 0.5, 1.0)]) == {}


@pytest.mark.parametrize("L", [4, 8])
def test_samplers_agree(chains, L):
    c = chains[L]
    for a, b in (("checkerboard", "rmh"), ("checkerboard", "mala"), ("rmh", "mala")):
        for k in OBS:
            z = _z((c[a][k]["mean"], c[a][k]["mcse"]), (c[b][k]["mean"], c[b][k]["mcse"]))
            assert z < 4, f"{a} vs {b} on {k}: z = {z:.2f}"


@pytest.mark.slow
def test_checkerboard_ordered_phase(phi4_reference):
    t = Phi4(8, 0.8, 1.0)
    assert _failures(_run(checkerboard(t, 1.0), t, 10_000, 4), phi4_reference[(8, 0.8, 1.0)]) == {}


class _WrongHopping(Phi4):
    """phi^4 with the sign of the hopping term flipped in the local update only."""

    def local_delta(self, phi, proposed):
        flipped = Phi4(self.L, -self.beta, self.g)
        return flipped.local_delta(phi, proposed)


@pytest.mark.slow
def test_broken_kernel_is_caught(phi4_reference):
    """The reference check has the power to see a wrong kernel (antiferromagnetic hopping)."""
    t = _WrongHopping(8, 0.5, 1.0)
    failures = _failures(_run(checkerboard(t, 1.0), t, 10_000, 5), phi4_reference[(8, 0.5, 1.0)])
    assert {"abs_m", "m2", "action_density", "sd"} <= set(failures)
