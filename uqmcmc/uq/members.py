"""Ensemble members as one stacked network: initialised, trained and applied under ``vmap``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import optax
from flax import nnx

from uqmcmc._validation import positive_int
from uqmcmc.uq._loop import fit, graphdefs, merge_parts, split_parts
from uqmcmc.uq.losses import with_loss_head
from uqmcmc.uq.rng import as_key

Array = jax.Array

__all__ = [
    "Stacked", "init_members", "member_apply", "member_chunk", "map_in_chunks", "train_members",
]  # fmt: skip


class Stacked(NamedTuple):
    """Ensemble members as one graph definition (eval mode) and a stacked state.

    Every leaf of ``state`` has a leading member axis; apply with :func:`member_apply`.

    Examples
    --------
    >>> import jax
    >>> from uqmcmc.nets import MLP
    >>> _, eval_def, state = init_members(lambda r: MLP(2, (4,), rngs=r), jax.random.key(0), 3)
    >>> members = Stacked(eval_def, state)
    >>> members.n_members, state["readout"]["kernel"].shape
    (3, (3, 4, 1))
    """

    graphdef: Any
    state: nnx.State

    @property
    def n_members(self) -> int:
        return int(jax.tree.leaves(self.state)[0].shape[0])


def init_members(
    build: Callable[[nnx.Rngs], nnx.Module], key: Array, n_members: int
) -> tuple[Any, Any, nnx.State]:
    """Build ``n_members`` networks with independent initialisations, stacked.

    ``build(rngs)`` makes one network. Returns ``(train_graphdef, eval_graphdef, state)``
    with a leading member axis on every leaf of ``state``.

    Examples
    --------
    >>> import jax
    >>> from uqmcmc.nets import MLP
    >>> train_def, eval_def, state = init_members(
    ...     lambda rngs: MLP(2, (4,), rngs=rngs), jax.random.key(0), n_members=5
    ... )
    >>> state["layers"][0]["kernel"].shape  # (members, in, out)
    (5, 2, 4)
    >>> k = state["layers"][0]["kernel"][...]
    >>> bool((k[0] != k[1]).any())  # independent initialisations
    True
    """
    n_members = positive_int("n_members", n_members)
    train_def, eval_def = graphdefs(nnx.eval_shape(lambda: build(nnx.Rngs(0))))
    create = jax.jit(jax.vmap(lambda k: nnx.state(build(nnx.Rngs(k)))))
    state = create(jax.random.split(key, n_members))
    return train_def, eval_def, state


def train_members(
    build: Callable[[nnx.Rngs], nnx.Module],
    x: Array,
    y: Array,
    *,
    key: Array,
    n_members: int,
    epochs: int = 50,
    batch_size: int = 24,
    optimizer: optax.GradientTransformation | Callable[[int], Any] | None = None,
    loss: str = "mse",
    validation: tuple[Array, Array] | None = None,
    patience: int | None = None,
    progress: bool = True,
) -> tuple[Stacked, dict]:
    """Train ``n_members`` networks at once, ``jax.vmap`` over stacked parameters.

    Members differ in initialisation, data order and dropout masks (independent keys) and see
    the same data. Arguments as in :func:`uqmcmc.uq.training.train`, plus
    ``build(rngs) -> network`` (e.g. ``ModelSpec.build``; with ``loss="gaussian_nll"`` and no
    ``mean_var`` it is wrapped in :class:`~uqmcmc.uq.losses.GaussianHead`). With ``patience``,
    each member keeps its own best epoch and training stops when every member has run out of
    patience.

    Returns
    -------
    members
        :class:`Stacked` (eval-mode graph definition, stacked state).
    history
        As in :func:`uqmcmc.uq.training.train`, with a trailing member axis on the losses and
        ``best_epoch``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.nets import MLP
    >>> x = jnp.linspace(-1, 1, 32)[:, None]
    >>> members, hist = train_members(lambda rngs: MLP(1, (8,), rngs=rngs), x, x[:, 0],
    ...                               key=jax.random.key(0), n_members=3, epochs=5,
    ...                               progress=False)
    >>> members.n_members, hist["train_loss"].shape
    (3, (5, 3))
    """
    build = with_loss_head(build, loss)
    k_init, k_fit = jax.random.split(as_key(key))
    train_def, eval_def, state = init_members(build, k_init, n_members)

    def make_parts():
        return jax.jit(jax.vmap(lambda s: split_parts(nnx.merge(train_def, s))))(state)

    parts, history = fit(
        make_parts,
        train_def,
        eval_def,
        x,
        y,
        key=k_fit,
        n_members=n_members,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        loss=loss,
        validation=validation,
        patience=patience,
        progress=progress,
    )
    merged = jax.jit(jax.vmap(lambda p: nnx.state(nnx.merge(eval_def, *p))))(parts)
    return Stacked(eval_def, merged), history


#: Members are fused into one ``vmap`` while their inputs together hold at most this many
#: numbers; beyond it they run in sequential chunks (``lax.map``) of as many members as fit.
#: Measured on 2 cores (bench section 3, 10 RCNN members against one, side by side): fused,
#: 10 members cost 8.6x one at batch 2 x 8 x 8 but 13x at batch 8, 19x at 128 and 31x at 512
#: (the stacked activations spill out of cache); one member at a time, 9.2-10.3x at every batch.
FUSED_INPUTS = 1024


def member_chunk(n_members: int, input_size: int, limit: int | None = None) -> int:
    """Members per fused chunk: all of them while ``n_members * input_size <= limit``
    (default :data:`FUSED_INPUTS`), else as many as fit in ``limit`` (at least one).

    Examples
    --------
    >>> member_chunk(10, 2 * 64), member_chunk(10, 8 * 64), member_chunk(10, 512 * 64)
    (8, 2, 1)
    """
    limit = FUSED_INPUTS if limit is None else int(limit)
    per_chunk = max(1, limit // max(1, int(input_size)))
    return min(positive_int("n_members", n_members), per_chunk)


def member_apply(
    members: Stacked,
    fn: Callable[[nnx.Module, Array], Any],
    x: Any,
    key: Array | None = None,
    *,
    chunk: int | None = None,
) -> Any:
    """``fn(member, x)`` for every member (leading member axis of the result).

    Members are evaluated in fused chunks of ``chunk`` (default :func:`member_chunk` of the
    input's size): one ``vmap`` over all of them when the inputs are small, ``lax.map`` over
    chunks of members otherwise. The results are the same either way (up to float round-off).
    ``key`` reseeds the members' RNG streams (one key per member), e.g. for dropout in train
    mode; by default a fixed key is used (eval mode needs none).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.nets import MLP
    >>> _, eval_def, state = init_members(lambda r: MLP(1, (4,), rngs=r), jax.random.key(0), 5)
    >>> fused = member_apply(Stacked(eval_def, state), lambda m, x: m(x), jnp.ones((7, 1)))
    >>> fused.shape
    (5, 7)
    >>> chunked = member_apply(Stacked(eval_def, state), lambda m, x: m(x), jnp.ones((7, 1)),
    ...                        chunk=2)
    >>> bool(jnp.allclose(chunked, fused, atol=1e-6))
    True
    """
    n = members.n_members
    keys = jax.random.split(jax.random.key(0) if key is None else key, n)

    def one(state, k):
        parts = split_parts(nnx.merge(members.graphdef, state))
        return fn(merge_parts(members.graphdef, parts, k), x)

    if chunk is None:
        chunk = member_chunk(n, sum(leaf.size for leaf in jax.tree.leaves(x)))
    return map_in_chunks(lambda args: one(*args), (members.state, keys), chunk)


def map_in_chunks(fn: Callable[[Any], Any], xs: Any, chunk: int) -> Any:
    """``fn`` over the leading axis of ``xs``: one ``vmap`` when ``chunk`` covers it, else
    ``lax.map`` over fused chunks of ``chunk`` (the layout :func:`member_chunk` picks).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> xs = jnp.arange(5.0)
    >>> [map_in_chunks(lambda v: 2 * v, xs, c).tolist() for c in (5, 2)]
    [[0.0, 2.0, 4.0, 6.0, 8.0], [0.0, 2.0, 4.0, 6.0, 8.0]]
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    if positive_int("chunk", chunk) >= n:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk)
