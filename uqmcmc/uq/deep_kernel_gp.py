"""Predictions of the deep-kernel backend (:mod:`uqmcmc.uq.deep_kernel`): a sparse GP on a
trained network's features, as static structure (hashable, static under ``jit``) and dynamic
arrays, with the jitted predictive moments, the moments of differences and of linear
functionals, and joint pathwise draws.

Every output element is one GP observation: a weighted sum of the GP at its sites (one site per
output for a field, every site for an extensive energy); a linear functional of the outputs is
again one such observation, over all the sites involved.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from uqmcmc.uq.gp import GPParams, Obs, _Inverses, _predict
from uqmcmc.uq.random_features import _pathwise

Array = jax.Array

__all__: list[str] = []


class _Static(NamedTuple):
    """Hashable structure (static under ``jit``: equal architectures share compilations)."""

    graphdef: Any
    site_axes: int
    kernel: str
    rff_features: int


class _Fitted(NamedTuple):
    """Arrays of a fitted backend: network state, GP, and the label shift (per site) and scale."""

    state: nnx.State
    params: GPParams
    inv: _Inverses
    loc: Array
    scale: Array


def _observe(static: _Static, state: nnx.State, x: Array) -> tuple[tuple[int, ...], Obs]:
    """Output shape ``(*batch, *out)`` and the observations of every output element."""
    h = nnx.merge(static.graphdef, state).features(x)
    out = h.shape[: h.ndim - 1 - static.site_axes]
    groups = h.reshape(math.prod(out), -1, h.shape[-1])
    return out, Obs(groups, jnp.ones(groups.shape[:2], groups.dtype))


def _to_labels(fit: _Fitted, obs: Obs, mean: Array, var: Array) -> tuple[Array, Array]:
    return fit.loc * jnp.sum(obs.weights, -1) + fit.scale * mean, fit.scale**2 * var


@partial(jax.jit, static_argnums=0)
def _mean_var(static: _Static, fit: _Fitted, x: Array, epistemic_only: Array):
    out, obs = _observe(static, fit.state, x)
    mean, var = _to_labels(fit, obs, *_predict(static.kernel, fit.params, fit.inv, obs))
    noise = jnp.where(epistemic_only, 0.0, jnp.exp(fit.params.log_noise) * fit.scale**2)
    return mean.reshape(out), (var + noise).reshape(out)


@partial(jax.jit, static_argnums=0)
def _delta_mean_var(static: _Static, fit: _Fitted, x: Array, x_new: Array):
    out, before = _observe(static, fit.state, x)
    out_new, after = _observe(static, fit.state, x_new)
    if out != out_new:
        raise ValueError(f"x and x_new give outputs {out} and {out_new}: shapes must match")
    obs = Obs(
        jnp.concatenate([before.groups, after.groups], axis=1),
        jnp.concatenate([-before.weights, after.weights], axis=1),
    )
    mean, var = _to_labels(fit, obs, *_predict(static.kernel, fit.params, fit.inv, obs))
    return mean.reshape(out), var.reshape(out)


@partial(jax.jit, static_argnums=0)
def _linear(static: _Static, fit: _Fitted, x: Array, weights: Array):
    """Mean per output element and the epistemic variance of ``sum(weights * f(x))``: the
    functional is ONE observation whose sites are every site of every output element."""
    out, obs = _observe(static, fit.state, x)
    mean, _ = _to_labels(fit, obs, *_predict(static.kernel, fit.params, fit.inv, obs))
    w = weights.reshape(-1, 1) * obs.weights
    one = Obs(obs.groups.reshape(1, -1, obs.groups.shape[-1]), w.reshape(1, -1))
    _, var = _predict(static.kernel, fit.params, fit.inv, one)
    return mean.reshape(out), fit.scale**2 * var[0]


@partial(jax.jit, static_argnums=0)
def _draws(static: _Static, fit: _Fitted, keys: Array, x: Array):
    out, obs = _observe(static, fit.state, x)
    draw = _pathwise(static.kernel, static.rff_features, fit.params, fit.inv, obs)
    g = jax.lax.map(draw, keys)  # one draw at a time: its features stay in cache
    return _to_labels(fit, obs, g, 0.0)[0].reshape(keys.shape[0], *out)


def _out_shape(static: _Static, state: nnx.State, x: Array) -> tuple[int, ...]:
    """Shape ``(*batch, *out)`` of the outputs for inputs ``x`` (no computation)."""
    h = jax.eval_shape(lambda s, x: nnx.merge(static.graphdef, s).features(x), state, x)
    return tuple(h.shape[: len(h.shape) - 1 - static.site_axes])
