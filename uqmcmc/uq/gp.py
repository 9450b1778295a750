"""Sparse Gaussian-process numerics: kernels, Titsias' collapsed bound, its optimiser and the
posterior predictions of observations that are weighted sums of the GP over groups of inputs.

The GP ``g ~ GP(0, k)`` lives on feature vectors; an observation is ``sum_j w_j g(h_j)``
(:class:`Obs`): one site of a field, a sum over the sites of an energy, or a difference
``f(x') - f(x)``. ``M`` inducing inputs ``Z`` (:class:`GPParams`) carry the posterior
(:class:`GPPosterior`), so no solve is larger than ``M x M``. Pathwise posterior draws are in
:mod:`uqmcmc.uq.random_features`; :class:`uqmcmc.uq.deep_kernel.DeepKernelRegression` puts
both on a trained network's features. The underscored functions are this package's internals
(shared with those two modules), not a public API.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax

Array = jax.Array

__all__ = ["GPParams", "GPPosterior", "KERNELS", "Obs", "kernel_matrix"]


#: Kernels by name; Matern ``nu`` = 1/2, 3/2, 5/2 (RBF is the ``nu -> inf`` limit).
KERNELS = {"rbf": None, "matern12": 0.5, "matern32": 1.5, "matern52": 2.5}

_JITTER = 1e-4  # relative to the signal variance (float32)


class GPParams(NamedTuple):
    """Hyperparameters (log scale) and inducing inputs ``z (M, F)``.

    ``log_lengthscale (F,)`` (ARD), ``log_signal`` (the prior variance ``k(h, h)``, in
    standardised label units), ``log_noise`` (the label-noise variance) and ``z``. A fitted
    :class:`~uqmcmc.uq.deep_kernel.DeepKernelRegression` holds them as ``params``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> p = GPParams(jnp.zeros(3), jnp.log(2.0), jnp.log(0.01), jnp.zeros((8, 3)))
    >>> p.z.shape, round(float(kernel_matrix("rbf", p, p.z[:1], p.z[:1])[0, 0]), 3)
    ((8, 3), 2.0)
    """

    log_lengthscale: Array
    log_signal: Array
    log_noise: Array
    z: Array


class GPPosterior(NamedTuple):
    """Whitened posterior of the inducing values: ``chol(Kuu)``, ``chol(I + A A^T)``, ``c``.

    With ``A = Luu^-1 Kuf / sigma_noise`` the posterior of the whitened inducing values
    ``Luu^-1 u`` is ``N(Lb^-T c, (Lb Lb^T)^-1)``. A fitted deep kernel regression
    holds it as ``post`` (and writes it with its ``save``).

    Examples
    --------
    Before any data, ``A = 0``: ``Lb = I`` and ``c = 0``, the posterior is the prior.

    >>> import jax.numpy as jnp
    >>> p = GPParams(jnp.zeros(1), jnp.asarray(0.0), jnp.log(0.1), jnp.array([[-1.0], [1.0]]))
    >>> luu = jnp.linalg.cholesky(kernel_matrix("rbf", p, p.z, p.z) + 1e-4 * jnp.eye(2))
    >>> prior = GPPosterior(luu, jnp.eye(2), jnp.zeros(2))
    >>> bool(jnp.allclose(prior.luu @ prior.luu.T, kernel_matrix("rbf", p, p.z, p.z), atol=1e-3))
    True
    """

    luu: Array
    lb: Array
    c: Array


class _Inverses(NamedTuple):
    """The posterior's triangular factors inverted once (``Luu^-1``, ``Lb^-1``) and ``c``.

    Predictions and draws multiply by these instead of solving with ``Luu`` and ``Lb`` at
    every call: on CPU a batched ``M x M`` triangular solve costs several times the matrix
    product (measured: 6 ms against under 1 ms for the 16 chains of a MALA step).
    """

    luu_inv: Array
    lb_inv: Array
    c: Array


def _invert(post: GPPosterior) -> _Inverses:
    """Invert the triangular factors in float64 (NumPy, once per fit or load), store float32."""

    def inv(lower):
        a = np.asarray(lower, np.float64)
        return jnp.asarray(np.linalg.solve(a, np.eye(a.shape[0])), jnp.float32)

    return _Inverses(inv(post.luu), inv(post.lb), jnp.asarray(post.c))


def kernel_matrix(kernel: str, p: GPParams, a: Array, b: Array) -> Array:
    """``k(a_i, b_j)`` for ``a (n, F)``, ``b (m, F)``: ARD RBF or Matern (see :data:`KERNELS`),
    scaled by the signal variance ``exp(p.log_signal)``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> p = GPParams(jnp.zeros(2), jnp.log(2.0), jnp.log(0.1), jnp.zeros((3, 2)))
    >>> k = kernel_matrix("matern32", p, jnp.zeros((1, 2)), jnp.ones((3, 2)))
    >>> k.shape, round(float(k[0, 0]), 3)  # 2 (1 + sqrt(6)) exp(-sqrt(6))
    ((1, 3), 0.596)
    """
    ls = jnp.exp(p.log_lengthscale)
    a, b = a / ls, b / ls
    d2 = jnp.sum(a * a, -1)[:, None] + jnp.sum(b * b, -1)[None, :] - 2.0 * a @ b.T
    d2 = jnp.maximum(d2, 0.0)
    nu = KERNELS[kernel]
    if nu is None:
        k = jnp.exp(-0.5 * d2)
    else:
        r = jnp.sqrt(2.0 * nu * d2 + 1e-12)
        poly = {0.5: 1.0, 1.5: 1.0 + r, 2.5: 1.0 + r + r * r / 3.0}[nu]
        k = poly * jnp.exp(-r)
    return jnp.exp(p.log_signal) * k


# -- the GP observed through weighted sums over groups of sites ---------------------------
class Obs(NamedTuple):
    """``K`` observations, each ``sum_j weights[k, j] * g(groups[k, j])``.

    ``groups (K, J, F)``, ``weights (K, J)``: ``J = 1`` and weight 1 for a field (every site
    observed), ``J`` = the number of sites for an energy, and weights ``-1, +1`` for a
    difference ``f(x') - f(x)``.

    Examples
    --------
    A difference ``g(b) - g(a)`` of two feature vectors is one observation; its prior
    variance is ``w^T k w = 2 (1 - exp(-|b - a|^2 / 2))`` for a unit RBF kernel:

    >>> import jax.numpy as jnp
    >>> a, b = jnp.zeros(2), jnp.array([0.5, 0.0])
    >>> obs = Obs(jnp.stack([a, b])[None], jnp.array([[-1.0, 1.0]]))
    >>> p = GPParams(jnp.zeros(2), jnp.asarray(0.0), jnp.log(0.1), jnp.zeros((4, 2)))
    >>> k = kernel_matrix("rbf", p, obs.groups[0], obs.groups[0])
    >>> obs.groups.shape, round(float(obs.weights[0] @ k @ obs.weights[0]), 4)
    ((1, 2, 2), 0.235)
    """

    groups: Array
    weights: Array


def _cross(kernel, p, obs):
    """``Cov(u, obs)``: ``(M, K)``."""
    K, J, F = obs.groups.shape
    k = kernel_matrix(kernel, p, p.z, obs.groups.reshape(K * J, F)).reshape(-1, K, J)
    return jnp.sum(k * obs.weights, -1)


def _prior_var(kernel, p, obs):
    """Prior variance of every observation, ``(K,)``."""
    if obs.groups.shape[1] == 1:
        return jnp.exp(p.log_signal) * obs.weights[:, 0] ** 2

    def one(g, w):
        return w @ kernel_matrix(kernel, p, g, g) @ w

    return jax.vmap(one)(obs.groups, obs.weights)


def _luu(kernel, p):
    m = p.z.shape[0]
    kuu = kernel_matrix(kernel, p, p.z, p.z) + _JITTER * jnp.exp(p.log_signal) * jnp.eye(m)
    return jnp.linalg.cholesky(kuu)


def _collapsed(kernel, p, obs, r):
    """Titsias' bound per data point and the (whitened) posterior it implies."""
    noise = jnp.exp(p.log_noise)
    luu = _luu(kernel, p)
    a = jsl.solve_triangular(luu, _cross(kernel, p, obs), lower=True) / jnp.sqrt(noise)
    lb = jnp.linalg.cholesky(jnp.eye(a.shape[0]) + a @ a.T)
    c = jsl.solve_triangular(lb, a @ r, lower=True) / jnp.sqrt(noise)
    n = r.shape[0]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(lb))) + n * p.log_noise
    quad = jnp.sum(r * r) / noise - jnp.sum(c * c)
    trace = jnp.sum(_prior_var(kernel, p, obs)) / noise - jnp.sum(a * a)
    bound = -0.5 * (n * jnp.log(2 * jnp.pi) + logdet + quad + trace)
    return bound / n, GPPosterior(luu, lb, c)


def _optimise(kernel, p0, obs, r, steps, learning_rate):
    """Maximise the bound with Adam (one compiled ``lax.scan``); returns params and history."""
    opt = optax.adam(learning_rate)

    def loss(p):
        return -_collapsed(kernel, p, obs, r)[0]

    def step(carry, _):
        p, state = carry
        value, grad = jax.value_and_grad(loss)(p)
        updates, state = opt.update(grad, state, p)
        return (optax.apply_updates(p, updates), state), value

    (p, _), history = jax.lax.scan(step, (p0, opt.init(p0)), None, length=steps)
    return p, history


def _predict(kernel, p, inv, obs):
    """Posterior mean and variance of every observation (``inv``: :class:`_Inverses`)."""
    a_s = inv.luu_inv @ _cross(kernel, p, obs)
    b_s = inv.lb_inv @ a_s
    var = _prior_var(kernel, p, obs) - jnp.sum(a_s * a_s, 0) + jnp.sum(b_s * b_s, 0)
    return b_s.T @ inv.c, jnp.maximum(var, 0.0)
