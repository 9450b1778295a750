"""Test support: analytic stand-in UQ backends, a compact many-chain sampler and z-scores."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc._arviz import mcse
from uqmcmc.mcmc.estimators import standard_normal


class StandIn:
    """A UQ backend made of an exact function plus Gaussian noise per joint draw.

    ``predict_mean_var(x)`` returns ``fn(x)`` and ``sigma**2 + offset**2`` per output element;
    ``predict_draws(key, x, n)`` returns ``fn(x) + sigma * xi + offset * c``, with ``xi``
    independent per draw and output element and ``c`` one number per draw shared by the whole
    batch (a fully correlated error, as one ensemble member makes). ``fn`` takes ONE
    configuration of shape ``in_shape``; inputs are batched over leading axes.
    ``predict_linear(x, w)`` gives the exact variance of ``sum(w * f(x))`` under that model,
    ``sigma**2 sum(w**2) + offset**2 (sum w)**2``.
    """

    kind = "StandIn"

    def __init__(self, fn: Callable, in_shape: tuple, sigma: float = 0.0, offset: float = 0.0):
        self.fn, self.in_shape, self.sigma, self.offset = fn, tuple(in_shape), sigma, offset

    def _apply(self, x):
        x = jnp.asarray(x)
        batch = x.shape[: x.ndim - len(self.in_shape)]
        out = jax.vmap(self.fn)(x.reshape((-1, *self.in_shape)))
        return out.reshape(batch + out.shape[1:])

    def predict_mean_var(self, x):
        mean = self._apply(x)
        return mean, jnp.full_like(mean, self.sigma**2 + self.offset**2)

    def predict_linear(self, x, weights):
        var = self.sigma**2 * jnp.sum(weights**2) + self.offset**2 * jnp.sum(weights) ** 2
        return self._apply(x), var

    def predict_draws(self, key, x, n):
        mean = self._apply(x)
        k1, k2 = jax.random.split(key)
        xi = standard_normal(k1, (n, *mean.shape))
        c = standard_normal(k2, (n,) + (1,) * mean.ndim)
        return mean + self.sigma * xi + self.offset * c


def sample(build, key, x0, num_steps: int, observe: Callable, warmup: int = 0, params=None):
    """Run chains started at ``x0`` (chains first) in one ``jit(vmap)`` + ``scan`` program.

    ``build`` is a ``SamplingAlgorithm``, or a function ``p -> SamplingAlgorithm`` vmapped over
    the entries of ``params`` (e.g. noise levels: one compilation for all of them). Returns
    ``(obs, info)``: ``observe(position)`` per draw and the kernel's Info, every leaf shaped
    ``(chain, draw, ...)``, with a leading params axis when ``params`` is given.
    """
    n_chains = x0.shape[0]

    def run(p):
        alg = build(p) if params is not None else build

        def step(states, k):
            states, info = jax.vmap(alg.step)(jax.random.split(k, n_chains), states)
            return states, (jax.vmap(observe)(states.position), info)

        states = jax.vmap(alg.init)(x0)
        out = jax.lax.scan(step, states, jax.random.split(key, warmup + num_steps))[1]
        return jax.tree.map(lambda a: jnp.swapaxes(a[warmup:], 0, 1), out)

    if params is None:
        out = jax.jit(run)(None)
    else:
        out = jax.jit(jax.vmap(run))(jnp.asarray(params))
    return jax.tree.map(np.asarray, out)


def mean_mcse(draws) -> tuple[float, float]:
    """Mean and ESS-aware MCSE (ArviZ) of draws ``(chain, draw)``."""
    draws = np.asarray(draws, dtype=float)
    return float(draws.mean()), mcse(draws)


def z_between(a, b) -> float:
    """``(mean_a - mean_b) / sqrt(MCSE_a^2 + MCSE_b^2)`` of two independent runs."""
    (ma, ea), (mb, eb) = mean_mcse(a), mean_mcse(b)
    return (ma - mb) / float(np.hypot(ea, eb))


@functools.cache
def equilibrated_phi4(target, n_chains: int, seed: int = 0, sweeps: int = 300):
    """Fields drawn from ``target`` by exact checkerboard sweeps (start chains in equilibrium).

    Cached per (target object, chains, seed, sweeps): test modules share one compilation.
    """
    from uqmcmc.mcmc import checkerboard

    alg = checkerboard(target, 1.0)

    @jax.jit
    def run(key):
        states = jax.vmap(alg.init)(jnp.zeros((n_chains, *target.shape)))

        def sweep(states, k):
            return jax.vmap(alg.step)(jax.random.split(k, n_chains), states)[0], None

        return jax.lax.scan(sweep, states, jax.random.split(key, sweeps))[0].position

    return run(jax.random.key(seed))


#: The independently computed phi^4 reference values (a copy kept with the tests).
REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "phi4_exact.json"


def reference_points() -> list[dict]:
    """The points of ``tests/data/phi4_exact.json``: ``{"L", "beta", "g", <obs>: {"mean",
    "err"}, ...}`` each (the one reader of that file; the conftest fixtures use it)."""
    return json.loads(REFERENCE_FILE.read_text())["points"]


def reference_point(L: int, beta: float, g: float = 1.0) -> dict:
    """The reference point ``(L, beta, g)`` (``KeyError`` if the file has none)."""
    for p in reference_points():
        if (p["L"], p["beta"], p["g"]) == (L, beta, g):
            return p
    raise KeyError(f"no reference point L={L}, beta={beta}, g={g} in {REFERENCE_FILE.name}")


def phi4_reference(target) -> dict[str, tuple[float, float]]:
    """Exact means and errors of ``abs_m``, ``m2``, ``action_density`` for a ``Phi4`` target.

    From :func:`reference_point` when the file has the point, else from 128 exact
    checkerboard chains x 4000 sweeps (errors: MCSE).
    """
    names = ("abs_m", "m2", "action_density")
    try:
        p = reference_point(target.L, target.beta, target.g)
        return {k: (p[k]["mean"], p[k]["err"]) for k in names}
    except KeyError:
        pass
    from uqmcmc.mcmc import checkerboard

    x0 = equilibrated_phi4(target, 128, seed=12345)
    obs, _ = sample(checkerboard(target, 1.0), jax.random.key(1), x0, 4000, target.observables)
    return {k: mean_mcse(obs[k]) for k in names}


def z_vs_reference(draws, reference: tuple[float, float]) -> float:
    """``(mean - ref) / sqrt(MCSE^2 + err_ref^2)`` for a reference ``(value, error)``."""
    mean, err = mean_mcse(draws)
    return (mean - reference[0]) / float(np.hypot(err, reference[1]))
