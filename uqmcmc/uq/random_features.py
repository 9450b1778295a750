"""Pathwise posterior draws of the sparse GP (:mod:`uqmcmc.uq.gp`) from random Fourier
features, and the fast ``cos``/``sin`` they need.

A draw is a prior function from random Fourier features plus the update that conditions it
on the inducing values (Wilson et al. 2020): :func:`_pathwise`. Package internals of
:class:`uqmcmc.uq.deep_kernel.DeepKernelRegression`, not a public API.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc.uq.gp import _JITTER, KERNELS, _cross

Array = jax.Array

__all__: list[str] = []


# 2 pi in three parts (Cody-Waite): ``n * 6.28125`` is exact in float32 for ``|n| < 2**16``
_TWO_PI = (
    6.28125,
    2 * math.pi - 6.28125,
    2 * math.pi - 6.28125 - float(np.float32(2 * math.pi - 6.28125)),
)
_COS_TAYLOR = tuple((-1) ** k / math.factorial(2 * k) for k in range(10))
_SIN_TAYLOR = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(10))


def _horner(u: Array, coefficients: tuple[float, ...]) -> Array:
    out = jnp.full_like(u, coefficients[-1])
    for c in coefficients[-2::-1]:
        out = out * u + c
    return out


def _cos_sin(x: Array) -> tuple[Array, Array]:
    """``(cos(x), sin(x))`` as polynomials after one reduction to ``[-pi, pi]``, to a few
    float32 ulp (below ``1e-6`` for ``|x|`` up to ``1e4``).

    XLA on CPU evaluates ``jnp.cos`` and ``jnp.sin`` by one scalar library call per element,
    some 30 times slower than these fused polynomials; the random Fourier features of
    :func:`_pathwise` are millions of them per MCMC step. The Taylor series to ``r**18`` and
    ``r**19`` leave ``4e-9`` and ``4e-10`` at ``|r| = pi``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> c, s = _cos_sin(jnp.array([0.0, 1.0, 1000.0]))
    >>> bool(jnp.allclose(c, jnp.cos(jnp.array([0.0, 1.0, 1000.0])), atol=1e-6))
    True
    >>> bool(jnp.allclose(s, jnp.sin(jnp.array([0.0, 1.0, 1000.0])), atol=1e-6))
    True
    """
    n = jnp.round(x * (1.0 / (2.0 * math.pi)))
    r = x
    for part in _TWO_PI:
        r = r - n * part
    u = r * r
    return _horner(u, _COS_TAYLOR), r * _horner(u, _SIN_TAYLOR)


def _pathwise(kernel, n_rff, p, inv, obs):
    """``draw(key)``: one joint posterior draw of all observations by pathwise conditioning
    (Wilson et al. 2020), a prior function from ``n_rff`` random Fourier features with fresh
    frequencies plus ``k(., Z) Kuu^{-1} (u - f_prior(Z))`` with ``u`` drawn from the posterior.

    The features are ``n = ceil(n_rff / 2)`` pairs ``cos(omega_j . x), sin(omega_j . x)``
    with independent normal weights, ``f(x) = sqrt(s / n) sum_j (a_j cos(omega_j . x) +
    b_j sin(omega_j . x))``. Fresh frequencies and weights per draw make the prior function's
    covariance exactly ``k`` (the average of ``cos(omega . (x - y))`` over the spectral
    density *is* the kernel), hence the draw's covariance exactly the posterior's, for any
    ``n_rff``; ``n_rff`` sets how close to Gaussian a draw is. Given the frequencies a draw is
    Gaussian, and the variance of a single prior value does not depend on them
    (``cos**2 + sin**2 = 1``; a random phase would make it fluctuate). Per frequency this is
    closer to Gaussian than random-phase cosines; per feature, for the difference of nearby
    points, slightly less so (measured excess kurtosis 1.3 to 1.5 times), but a feature is
    cheaper: one product column, normal variates and range reduction per pair.
    What does not depend on the key (the points, ``Luu^{-1} k(Z, .)``) is computed once,
    outside ``draw``; the prior is evaluated at the observed sites and at ``Z`` in one product
    of shape ``(K J + M, n)``, and its normal variates come from one flat draw."""
    K, J, F = obs.groups.shape
    m = p.z.shape[0]
    n = -(-n_rff // 2)
    points = jnp.concatenate([obs.groups.reshape(K * J, F), p.z])
    a_s = inv.luu_inv @ _cross(kernel, p, obs)
    nu = KERNELS[kernel]

    def draw(key):
        k_n, k_gam = jax.random.split(key)
        normal = jax.random.normal(k_n, (n * (F + 2) + 2 * m,))
        omega = normal[: n * F].reshape(n, F)
        a, b, eps_u, eps_z = jnp.split(normal[n * F :], [n, 2 * n, 2 * n + m])
        if nu is not None:  # Matern: a multivariate Student-t with 2 nu degrees of freedom
            omega = omega / jnp.sqrt(jax.random.gamma(k_gam, nu, (n, 1)) / nu)
        omega = omega / jnp.exp(p.log_lengthscale)
        cos, sin = _cos_sin(points @ omega.T)
        f = (cos @ a + sin @ b) * jnp.sqrt(jnp.exp(p.log_signal) / n)
        f_z = f[K * J :] + jnp.sqrt(_JITTER * jnp.exp(p.log_signal)) * eps_z
        update = inv.lb_inv.T @ (inv.c + eps_u) - inv.luu_inv @ f_z
        return jnp.sum(f[: K * J].reshape(K, J) * obs.weights, -1) + a_s.T @ update

    return draw


def _draw(kernel, n_rff, p, inv, obs, key):
    """One joint posterior draw of all observations (see :func:`_pathwise`)."""
    return _pathwise(kernel, n_rff, p, inv, obs)(key)
