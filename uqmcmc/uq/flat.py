"""Flat parameter vectors of nnx modules: one vector ``w`` per network, and back.

A Bayesian neural network (:class:`uqmcmc.uq.bnn.NumPyroBNN`) samples every weight of a
network as one vector; :func:`flat_params` splits a module into that vector and the
structure (:class:`Layout`) that rebuilds and applies the network at any ``w``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array

__all__ = ["FlatParams", "Layout", "flat_params"]


class Layout(NamedTuple):
    """The hashable structure of an nnx module's parameters (a static argument under ``jit``,
    so two networks of one architecture share their compiled functions).

    Build it with :func:`flat_params`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from uqmcmc.nets.mlp import MLP
    >>> layout = flat_params(MLP(1, (4,), rngs=nnx.Rngs(0))).layout
    >>> layout.size, layout.shapes
    (13, ((4,), (1, 4), (1,), (4, 1)))
    >>> layout.unravel(jnp.arange(13.0))["readout"]["kernel"].shape
    (4, 1)
    >>> {k: v.shape for k, v in layout.split(jnp.zeros((2, 13))).items()}["layers/0/kernel"]
    (2, 1, 4)
    >>> layout.fan_in_scales(2.0)[-4:].tolist()  # readout kernel: 2 / sqrt(4)
    [1.0, 1.0, 1.0, 1.0]
    """

    graphdef: Any
    treedef: Any
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def unravel(self, w: Array) -> nnx.State:
        """The ``nnx.Param`` state holding the flat vector ``w``."""
        cuts = np.cumsum([math.prod(s) for s in self.shapes])[:-1]
        parts = [a.reshape(s) for a, s in zip(jnp.split(w, cuts), self.shapes, strict=True)]
        return jax.tree.unflatten(self.treedef, parts)

    def apply(self, rest: nnx.State, w: Array, x: Array) -> Array:
        """The network with parameters ``w`` applied to ``x`` (pure, jit- and vmap-able)."""
        return nnx.merge(self.graphdef, self.unravel(w), rest)(x)

    def fan_in_scales(self, prior_scale: float) -> np.ndarray:
        """Per-parameter prior scales: ``prior_scale / sqrt(fan_in)`` for kernels (every leaf of
        two or more axes, fan-in = product of all but the last axis), ``prior_scale`` else."""
        parts = []
        for shape in self.shapes:
            fan_in = math.prod(shape[:-1]) if len(shape) >= 2 else 1
            parts.append(np.full(math.prod(shape), prior_scale / math.sqrt(fan_in)))
        return np.concatenate(parts).astype(np.float32)

    def split(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """Split stacked flat vectors ``(..., P)`` into named leaves ``(..., *shape)``."""
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = math.prod(shape)
            out[name] = w[..., start : start + n].reshape(*w.shape[:-1], *shape)
            start += n
        return out


class FlatParams(NamedTuple):
    """A module as :class:`Layout`, its non-parameter state and its flat parameter vector.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from uqmcmc.nets.mlp import MLP
    >>> fp = flat_params(MLP(1, (4,), rngs=nnx.Rngs(0)))
    >>> fp.vector.shape, fp.apply(jnp.zeros(13), jnp.ones((3, 1))).tolist()  # all weights 0
    ((13,), [0.0, 0.0, 0.0])
    """

    layout: Layout
    rest: nnx.State
    vector: Array

    def apply(self, w: Array, x: Array) -> Array:
        return self.layout.apply(self.rest, w, x)


def _key_name(key: Any) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def flat_params(net: nnx.Module) -> FlatParams:
    """Split ``net`` (in eval mode: dropout off) into a flat parameter vector and the rest.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from uqmcmc.nets.mlp import MLP
    >>> net = MLP(1, (4,), rngs=nnx.Rngs(0))
    >>> fp = flat_params(net)
    >>> fp.layout.size, fp.layout.names
    (13, ('layers/0/bias', 'layers/0/kernel', 'readout/bias', 'readout/kernel'))
    >>> x = jnp.ones((3, 1))
    >>> bool(jnp.allclose(fp.apply(fp.vector, x), net(x)))
    True
    """
    net.eval()
    graphdef, params, rest = nnx.split(net, nnx.Param, ...)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    names = tuple(
        "/".join(_key_name(k) for k in path if _key_name(k) != "value") for path, _ in leaves
    )
    shapes = tuple(tuple(leaf.shape) for _, leaf in leaves)
    vector = jnp.concatenate([jnp.ravel(leaf) for _, leaf in leaves])
    return FlatParams(Layout(graphdef, treedef, names, shapes), rest, vector)
