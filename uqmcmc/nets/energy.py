"""Extensive energy network: a sum of local terms, forces by ``jax.grad``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from uqmcmc.nets.rcnn import RCNN

Array = jax.Array

__all__ = ["EnergyNet"]


class EnergyNet(RCNN):
    """Energy (action) surrogate ``E(phi) = sum_x e(neighbourhood of x)``, shape ``(*batch,)``.

    The local term ``e`` is :class:`RCNN`'s per-site output (same constructor arguments and
    features, ``(*batch, L, L, channels)``); ``reduce = "sum"`` adds it over the two site axes,
    so ``E`` is extensive and applies to any lattice size. :meth:`grad` gives
    ``dE/dphi`` by automatic differentiation, the force field a MALA drift or a gradient-based
    ``Delta S`` needs.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = EnergyNet(channels=8, depth=1, rngs=nnx.Rngs(0))
    >>> phi = jnp.ones((2, 4, 4))  # a batch of two 4 x 4 fields
    >>> net(phi).shape, net.grad(phi).shape
    ((2,), (2, 4, 4))
    >>> big = jnp.ones((2, 8, 8))  # the same constant fields on an 8 x 8 lattice
    >>> bool(jnp.allclose(net(big), 4 * net(phi), rtol=1e-5))  # E is extensive
    True
    """

    reduce = "sum"
    site_axes = 2

    def grad(self, x: Array) -> Array:
        """``dE/dphi`` for every configuration, ``(*batch, L, L)``."""
        x = jnp.asarray(x)
        return jax.grad(lambda z: jnp.sum(self(z)))(x)
