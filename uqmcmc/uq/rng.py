"""Randomness: PRNG keys from seeds, and a network's RNG streams split off and reseeded."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array

__all__ = ["as_key", "rekey", "split_rng"]


def as_key(key: Array | int) -> Array:
    """A PRNG key from a key or an integer seed.

    Raw ``uint32[2]`` keys (``jax.random.PRNGKey``) are wrapped; anything else is refused.

    Examples
    --------
    >>> import jax
    >>> key = as_key(0)
    >>> key.shape, key.dtype
    ((), key<fry>)
    >>> as_key(jax.random.PRNGKey(0)).dtype  # a raw uint32[2] key
    key<fry>
    """
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
        raise ValueError(f"key must be a jax.random.key or an integer seed, got {key!r}")
    return key


def split_rng(model: nnx.Module) -> tuple[Any, nnx.State, nnx.State, nnx.State]:
    """``(graphdef, params, rng, rest)``: parameters, RNG streams (keys and counters), the rest.

    Examples
    --------
    >>> import jax
    >>> from flax import nnx
    >>> from uqmcmc.nets import MLP
    >>> graphdef, params, rng, rest = split_rng(MLP(1, (4,), dropout=0.1, rngs=nnx.Rngs(0)))
    >>> sorted(params["readout"]), len(jax.tree.leaves(rng)) > 0
    (['bias', 'kernel'], True)
    """
    return nnx.split(model, nnx.Param, nnx.RngState, ...)


def rekey(rng: nnx.State, key: Array) -> nnx.State:
    """Reset RNG streams: every key derived from ``key`` (same shapes), every counter zero.

    The random numbers a module draws then depend on ``key`` alone, not on how often it was
    called before (so a saved and reloaded MC-dropout model draws the same masks).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from uqmcmc.nets import MLP
    >>> net = MLP(1, (8,), dropout=0.5, rngs=nnx.Rngs(0))
    >>> graphdef, params, rng, rest = split_rng(net)
    >>> def masked(key):  # train mode: a dropout mask drawn from `key`
    ...     model = nnx.merge(graphdef, params, rekey(rng, key), rest, copy=True)
    ...     model.train()
    ...     return model(jnp.ones((2, 1)))
    >>> a, b = masked(jax.random.key(1)), masked(jax.random.key(1))
    >>> bool(jnp.array_equal(a, b)), bool(jnp.array_equal(a, masked(jax.random.key(2))))
    (True, False)
    """
    leaves, treedef = jax.tree.flatten(rng)
    new = []
    for i, leaf in enumerate(leaves):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            k = jax.random.fold_in(key, i)
            new.append(jax.random.split(k, leaf.shape) if leaf.shape else k)
        else:
            new.append(jnp.zeros_like(leaf))
    return jax.tree.unflatten(treedef, new)
