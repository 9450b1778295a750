"""A small MLP for vector inputs, following the uqmcmc network convention."""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Array = jax.Array

__all__ = ["MLP", "apply_readout", "reduce_sites"]


def reduce_sites(net: nnx.Module, values: Array) -> Array:
    """Apply ``net``'s reduction to per-site values ``(*batch, *sites)``.

    Sums over the last ``net.site_axes`` axes when ``net.reduce == "sum"`` (an extensive
    quantity), returns ``values`` unchanged when ``net.reduce == "none"``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Energy:  # stands for any network with the convention's two class attributes
    ...     reduce, site_axes = "sum", 2
    >>> per_site = jnp.ones((3, 4, 4))  # a batch of 3 fields on a 4 x 4 lattice
    >>> reduce_sites(Energy(), per_site).tolist()
    [16.0, 16.0, 16.0]
    >>> class Field:  # e.g. a network predicting grad S per site
    ...     reduce, site_axes = "none", 2
    >>> reduce_sites(Field(), per_site).shape
    (3, 4, 4)
    """
    reduce = getattr(net, "reduce", "none")
    if reduce == "none":
        return values
    if reduce == "sum":
        n = int(getattr(net, "site_axes", 0))
        return jnp.sum(values, axis=tuple(range(-n, 0))) if n else values
    raise ValueError(f"{type(net).__name__}.reduce must be 'none' or 'sum', got {reduce!r}")


def apply_readout(net: nnx.Module, h: Array, readout: nnx.Module | None = None) -> Array:
    """The network output from its features ``h``: ``readout(h)`` squeezed, then reduced.

    ``readout`` defaults to ``net.readout``; pass another ``Linear(F, 1)`` (e.g. a variance
    head) to reduce it the same way.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = MLP(1, (8,), rngs=nnx.Rngs(0))
    >>> x = jnp.ones((3, 1))
    >>> bool(jnp.allclose(apply_readout(net, net.features(x)), net(x)))
    True
    """
    return reduce_sites(net, (net.readout if readout is None else readout)(h)[..., 0])


class MLP(nnx.Module):
    """Fully connected network ``R^d -> R`` (scalar output), e.g. for 1-D regression tests.

    uqmcmc network convention (every network in ``uqmcmc.nets`` follows it, and a user's own
    network that follows it works in every backend):

    - ``features(x)`` returns the last hidden features, ``(*batch, *sites, F)``;
    - ``readout`` is an ``nnx.Linear(F, 1)`` applied to them;
    - ``__call__(x)`` is ``readout(features(x))`` squeezed, summed over the site axes when
      ``reduce == "sum"`` (an extensive energy), kept per site when ``reduce == "none"``
      (a field such as ``grad S``);
    - dropout layers, if any, are ``nnx.Dropout`` (``model.eval()`` / ``model.train()``).

    For this MLP there are no site axes: ``features`` is ``(*batch, F)``, the output
    ``(*batch,)``.

    Parameters
    ----------
    in_features : int or sequence of int
        Input size, or the shape of one configuration, e.g. ``(13, 3)``: its axes are
        flattened (a network of a whole configuration, as a default energy surrogate).
    hidden : sequence of int
        Widths of the hidden layers; the last one is ``F``.
    dropout : float
        Dropout rate after each hidden activation (0 disables).
    quadratic : bool
        Append each input and its square to the last hidden features, so the readout is a
        quadratic form plus the network: an energy that grows at large ``|x|`` (a ``tanh``
        network alone is bounded, and ``exp(-E)`` of a bounded energy cannot be normalised:
        a chain on it drifts away). ``F`` grows by ``2 d``.
    rngs : nnx.Rngs

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = MLP(1, (8, 8), rngs=nnx.Rngs(0))
    >>> net(jnp.zeros((3, 1))).shape, net.features(jnp.zeros((3, 1))).shape
    ((3,), (3, 8))
    >>> MLP((4, 2), (8,), rngs=nnx.Rngs(0))(jnp.zeros((5, 4, 2))).shape  # 5 configurations
    (5,)
    >>> MLP(3, (8,), quadratic=True, rngs=nnx.Rngs(0)).features(jnp.ones((5, 3))).shape
    (5, 14)
    """

    reduce = "none"
    site_axes = 0

    def __init__(
        self,
        in_features: int | Sequence[int],
        hidden: Sequence[int] = (64, 64),
        *,
        dropout: float = 0.0,
        quadratic: bool = False,
        rngs: nnx.Rngs,
    ):
        self.quadratic = bool(quadratic)
        if isinstance(in_features, int):
            self.in_shape: tuple[int, ...] = ()
        else:
            self.in_shape = tuple(int(n) for n in in_features)
            in_features = math.prod(self.in_shape)
        widths = [in_features, *hidden]
        self.layers = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        width = widths[-1] + (2 * in_features if self.quadratic else 0)
        self.readout = nnx.Linear(width, 1, rngs=rngs)

    def features(self, x: Array) -> Array:
        h = jnp.asarray(x)
        if self.in_shape:
            h = h.reshape(*h.shape[: h.ndim - len(self.in_shape)], -1)
        inputs = h
        for layer in self.layers:
            h = jnp.tanh(layer(h))
            if self.dropout is not None:
                h = self.dropout(h)
        if self.quadratic:
            h = jnp.concatenate([h, inputs, inputs * inputs], axis=-1)
        return h

    def __call__(self, x: Array) -> Array:
        return apply_readout(self, self.features(x))
