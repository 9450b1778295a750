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
    >>> phi = jnp.ones((3, 4, 4))
    >>> net(phi).shape, net.grad(phi).shape
    ((3,), (3, 4, 4))
    >>> bool(jnp.allclose(net(jnp.ones((8, 8))), 4 * net(jnp.ones((4, 4))), rtol=1e-5))
    True
    """

    reduce = "sum"
    site_axes = 2

    def grad(self, x: Array) -> Array:
        """``dE/dphi`` for every configuration, ``(*batch, L, L)``."""
        x = jnp.asarray(x)
        return jax.grad(lambda z: jnp.sum(self(z)))(x)
