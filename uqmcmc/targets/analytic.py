"""Small analytic targets with known moments, for testing kernels."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc.targets.base import check_finite_array

Array = jax.Array


class Gaussian:
    """Correlated Gaussian ``S(x) = (x - mu)^T P (x - mu) / 2`` with ``P = cov^{-1}``.

    Parameters
    ----------
    mean : array, shape (d,)
    cov : array, shape (d, d), symmetric positive definite

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> t = Gaussian(jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.5], [0.5, 2.0]]))
    >>> float(t.action(jnp.array([1.0, -1.0])))
    0.0
    >>> t.grad(jnp.array([2.0, -1.0])).round(3).tolist()
    [1.143, -0.286]
    """

    def __init__(self, mean, cov):
        mean = check_finite_array("mean", mean)
        cov = check_finite_array("cov", cov)
        if mean.ndim != 1:
            raise ValueError(f"mean must be a vector, got shape {mean.shape}")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(f"cov must have shape {(d, d)} to match mean, got {cov.shape}")
        if not bool(jnp.allclose(cov, cov.T)):
            raise ValueError("cov must be symmetric")
        if float(jnp.linalg.eigvalsh(cov).min()) <= 0:
            raise ValueError("cov must be positive definite")
        self.mean = mean
        self.cov = cov
        self.precision = jnp.linalg.inv(cov)

    @property
    def shape(self) -> tuple[int]:
        return self.mean.shape

    @property
    def params(self) -> dict:
        return {"target": "Gaussian", "dim": int(self.mean.shape[0])}

    def action(self, x: Array) -> Array:
        r = jnp.asarray(x) - self.mean
        return 0.5 * jnp.einsum("...i,ij,...j->...", r, self.precision, r)

    def grad(self, x: Array) -> Array:
        return (jnp.asarray(x) - self.mean) @ self.precision

    def moments(self) -> dict[str, np.ndarray]:
        """Exact ``mean`` and ``var`` of each coordinate."""
        return {"mean": np.asarray(self.mean), "var": np.asarray(jnp.diag(self.cov))}


class DoubleWell:
    """Independent tilted double wells ``S(x) = sum_i [h (x_i^2 - 1)^2 + c x_i]``.

    Parameters
    ----------
    dim : int
        Number of coordinates (1 or 2 for tests; any positive integer works).
    barrier : float
        Barrier height ``h > 0`` in units of the action.
    tilt : float
        Linear tilt ``c``; non-zero makes the wells unequal, so a sampler that fails to cross
        the barrier gets the mean wrong.

    Examples
    --------
    >>> t = DoubleWell(dim=1, barrier=1.0, tilt=0.3)
    >>> mom = t.moments()
    >>> bool(mom["mean"][0] < 0)  # the tilt favours the left well
    True
    """

    def __init__(self, dim: int = 1, barrier: float = 1.0, tilt: float = 0.0):
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not (math.isfinite(barrier) and barrier > 0):
            raise ValueError(f"barrier must be finite and > 0, got {barrier!r}")
        if not math.isfinite(tilt):
            raise ValueError(f"tilt must be finite, got {tilt!r}")
        self.dim = int(dim)
        self.barrier = float(barrier)
        self.tilt = float(tilt)

    @property
    def shape(self) -> tuple[int]:
        return (self.dim,)

    @property
    def params(self) -> dict:
        return {"target": "DoubleWell", "dim": self.dim, "barrier": self.barrier, "tilt": self.tilt}

    def action(self, x: Array) -> Array:
        x = jnp.asarray(x)
        return jnp.sum(self.barrier * (x * x - 1.0) ** 2 + self.tilt * x, axis=-1)

    def grad(self, x: Array) -> Array:
        x = jnp.asarray(x)
        return 4.0 * self.barrier * x * (x * x - 1.0) + self.tilt

    def moments(self, n_grid: int = 200_001) -> dict[str, np.ndarray]:
        """``mean`` and ``var`` of each coordinate by quadrature on a fine grid."""
        x = np.linspace(-4.0, 4.0, n_grid)
        s = self.barrier * (x * x - 1.0) ** 2 + self.tilt * x
        w = np.exp(-(s - s.min()))
        w /= np.trapezoid(w, x)
        mean = np.trapezoid(w * x, x)
        var = np.trapezoid(w * (x - mean) ** 2, x)
        return {"mean": np.full(self.dim, mean), "var": np.full(self.dim, var)}
