"""The optimisation loop shared by :func:`uqmcmc.uq.training.train` and
:func:`uqmcmc.uq.members.train_members` (internal).

One pure step function (:func:`step`: merge, loss, gradient, optax update) serves both a single
network and a stack of ensemble members: the member version is the same epoch function under
``jax.vmap`` over stacked parameters, optimiser states, PRNG keys (so different data orders and
dropout masks per member) with the data shared. Each epoch is one jitted ``lax.scan`` over
mini-batches; the Python loop runs over epochs only, for the progress bar and early stopping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from uqmcmc._validation import positive_int
from uqmcmc.uq.losses import LOSS_FNS, LOSSES
from uqmcmc.uq.rng import rekey, split_rng

Array = jax.Array


class Parts(NamedTuple):
    """A network's state in three parts: trained parameters, RNG streams, everything else."""

    params: nnx.State
    keys: nnx.State  # RNG streams: reset from the step key at every call (see rekey)
    rest: nnx.State  # everything else (RNG counts, batch statistics, ...)


class Carry(NamedTuple):
    """What one optimiser step carries to the next."""

    parts: Parts
    opt_state: Any


def split_parts(model: nnx.Module) -> Parts:
    """The :class:`Parts` of ``model`` (its graph definition is dropped)."""
    return Parts(*split_rng(model)[1:])


def graphdefs(model: nnx.Module):
    """Graph definitions in train mode (dropout on) and eval mode (dropout off)."""
    model.train()
    train_def = nnx.graphdef(model)
    model.eval()
    return train_def, nnx.graphdef(model)


def merge_parts(graphdef, parts: Parts, key: Array) -> nnx.Module:
    """A network from ``parts`` with its RNG streams reseeded from ``key``."""
    # copy=True: fresh Variables at the current trace level, so RNG counters (dropout) may be
    # updated inside jax.grad / vmap / scan
    return nnx.merge(graphdef, parts.params, rekey(parts.keys, key), parts.rest, copy=True)


def step(graphdef, optimizer, loss_fn, carry: Carry, batch) -> tuple[Carry, Array]:
    """One optimiser step on one (masked) mini-batch: the single home of the update rule."""
    x, y, w, key = batch
    parts = carry.parts

    def objective(params):
        model = merge_parts(graphdef, parts._replace(params=params), key)
        per_ex = loss_fn(model, x, y)
        rest = split_rng(model)[3]
        return jnp.sum(w * per_ex) / jnp.sum(w), rest

    (loss, rest), grads = jax.value_and_grad(objective, has_aux=True)(parts.params)
    updates, opt_state = optimizer.update(grads, carry.opt_state, parts.params)
    params = optax.apply_updates(parts.params, updates)
    return Carry(Parts(params, parts.keys, rest), opt_state), loss


def epoch_step(graphdef, optimizer, loss_fn, batch_size, carry, key, x, y):
    """A shuffled pass over the data; the last batch is padded and masked."""
    n = x.shape[0]
    n_batches = -(-n // batch_size)
    k_perm, k_drop = jax.random.split(key)
    order = jnp.concatenate(
        [jax.random.permutation(k_perm, n), jnp.zeros(n_batches * batch_size - n, int)]
    ).reshape(n_batches, batch_size)
    mask = (jnp.arange(n_batches * batch_size) < n).reshape(n_batches, batch_size)

    def body(carry, inputs):
        idx, w, k = inputs
        return step(graphdef, optimizer, loss_fn, carry, (x[idx], y[idx], w, k))

    carry, losses = jax.lax.scan(body, carry, (order, mask, jax.random.split(k_drop, n_batches)))
    return carry, jnp.sum(losses * mask.sum(axis=1)) / n


def evaluate_loss(graphdef, loss_fn, parts, x, y):
    """The mean loss on ``(x, y)`` (no update)."""
    model = merge_parts(graphdef, parts, jax.random.key(0))
    return jnp.mean(loss_fn(model, x, y))


def check_data(x, y, what: str = "") -> tuple[Array, Array]:
    """``x``, ``y`` as float arrays with the same leading (example) axis."""
    x, y = jnp.asarray(x, dtype=float), jnp.asarray(y, dtype=float)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0] or x.shape[0] < 1:
        raise ValueError(
            f"x{what} and y{what} must have the same leading (example) axis, got "
            f"{x.shape} and {y.shape}"
        )
    return x, y


def fit(
    make_parts: Callable[[], Parts],
    train_def,
    eval_def,
    x,
    y,
    *,
    key,
    n_members: int | None,
    epochs,
    batch_size,
    optimizer,
    loss,
    validation,
    patience,
    progress,
):
    """Shared by :func:`~uqmcmc.uq.training.train` (``n_members=None``) and
    :func:`~uqmcmc.uq.members.train_members`: returns ``(parts, history)``."""
    if loss not in LOSS_FNS:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size)
    if patience is not None:
        patience = positive_int("patience", patience)
        if validation is None:
            raise ValueError("patience (early stopping) needs validation=(x_val, y_val)")
    x, y = check_data(x, y)
    if validation is not None:
        if not isinstance(validation, tuple | list) or len(validation) != 2:
            raise ValueError("validation must be a pair (x_val, y_val)")
        xv, yv = check_data(*validation, what="_val")
    batch_size = min(batch_size, x.shape[0])
    steps = epochs * math.ceil(x.shape[0] / batch_size)
    if optimizer is None:
        optimizer = optax.adam(1e-3)
    elif not isinstance(optimizer, optax.GradientTransformation):
        if not callable(optimizer):
            raise ValueError(f"optimizer must be an optax transformation, got {optimizer!r}")
        optimizer = optimizer(steps)
    loss_fn = LOSS_FNS[loss]

    def init(parts):
        return Carry(parts, optimizer.init(parts.params))

    def epoch(carry, key):
        return epoch_step(train_def, optimizer, loss_fn, batch_size, carry, key, x, y)

    def evaluate(parts):
        return evaluate_loss(eval_def, loss_fn, parts, xv, yv)

    def improve(best, best_loss, carry, val):
        better = val < best_loss
        new, old = carry.parts, best
        params, rest = jax.tree.map(
            lambda a, b: jnp.where(better, a, b), (new.params, new.rest), (old.params, old.rest)
        )
        return Parts(params, old.keys, rest), jnp.minimum(val, best_loss), better

    if n_members is not None:
        init, epoch, evaluate, improve = (jax.vmap(f) for f in (init, epoch, evaluate, improve))
    epoch, evaluate, improve = jax.jit(epoch), jax.jit(evaluate), jax.jit(improve)

    carry = jax.jit(init)(make_parts())
    member_shape = () if n_members is None else (n_members,)
    best = carry.parts
    best_loss = jnp.full(member_shape, jnp.inf)
    wait = np.zeros(member_shape, int)
    best_epoch = np.zeros(member_shape, int)
    train_hist, val_hist = [], []
    bar = tqdm(range(epochs), unit="epoch", disable=not progress, desc="train")
    for i in bar:
        k = jax.random.fold_in(key, i)
        keys = k if n_members is None else jax.random.split(k, n_members)
        carry, train_loss = epoch(carry, keys)
        train_hist.append(np.asarray(train_loss))
        postfix = {"loss": f"{float(np.mean(train_hist[-1])):.4g}"}
        if validation is not None:
            val = evaluate(carry.parts)
            val_hist.append(np.asarray(val))
            postfix["val"] = f"{float(np.mean(val_hist[-1])):.4g}"
            if patience is not None:
                best, best_loss, better = improve(best, best_loss, carry, val)
                better = np.asarray(better)
                best_epoch = np.where(better, i, best_epoch)
                wait = np.where(better, 0, wait + 1)
                if np.all(wait >= patience):
                    break
        bar.set_postfix(postfix)
    bar.close()
    parts = best if patience is not None else carry.parts
    history = {
        "train_loss": np.stack(train_hist),
        "val_loss": np.stack(val_hist) if val_hist else None,
        "epochs": len(train_hist),
        "best_epoch": best_epoch if patience is not None else None,
        "loss": loss,
    }
    return parts, history
