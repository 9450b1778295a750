"""Monte Carlo dropout: dropout kept on at prediction, one mask per draw."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from uqmcmc._validation import positive_int
from uqmcmc.uq._checks import check_inputs
from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.io import ModelSpec, load_state, restore_module, save_state, state_arrays
from uqmcmc.uq.losses import LOSSES, with_loss_head
from uqmcmc.uq.members import map_in_chunks, member_chunk
from uqmcmc.uq.moments import delta_mean_var, linear_mean_var, member_mean_var, mixture_mean_var
from uqmcmc.uq.rng import as_key, rekey, split_rng
from uqmcmc.uq.training import train

Array = jax.Array

__all__ = ["MCDropout"]


def _has_dropout(model: nnx.Module) -> bool:
    return any(isinstance(node, nnx.Dropout) and node.rate > 0 for _, node in nnx.iter_graph(model))


class MCDropout(UQBackend):
    """MC dropout (Gal & Ghahramani 2016) over a network with ``nnx.Dropout`` layers.

    The network ``model_cls(**model_kwargs)`` is trained once with dropout on
    (:func:`uqmcmc.uq.training.train`) and keeps it on at prediction. One dropout mask is one
    draw of the function, applied to the WHOLE batch (the network runs under ``vmap`` over the
    batch with a shared PRNG key), so draws are joint across configurations.

    ``predict_mean_var`` averages ``n_masks`` masks, fixed by ``mask_seed`` (a deterministic
    function of ``x``; pass ``key=`` for fresh masks): ``var`` is the variance over masks
    (epistemic, ``ddof = 0``) plus the mean of the variance head (aleatoric; only when trained
    with ``loss="gaussian_nll"``; dropped with ``epistemic_only=True``). ``predict_draws`` uses
    fresh masks from its key and returns function draws (epistemic only).

    Parameters
    ----------
    model_cls, model_kwargs
        A network following the uqmcmc convention with dropout (e.g.
        ``RCNN, {"dropout": 0.1}``); constructor arguments except ``rngs``.
    n_masks
        Number of masks ``T`` behind ``predict_mean_var``.
    loss
        ``"mse"`` or ``"gaussian_nll"``.
    mask_seed
        Seed of the ``T`` fixed masks.

    Examples
    --------
    An MLP with dropout on a 1-D toy regression (two epochs: the calls, not a useful fit);
    for phi^4 fields use e.g. ``RCNN, {"channels": 16, "dropout": 0.1}`` in the same way:

    >>> import tempfile
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.nets import MLP
    >>> from uqmcmc.uq.data import gap_regression
    >>> x, y = gap_regression(0, 32)
    >>> mc = MCDropout(MLP, {"in_features": 1, "hidden": [8], "dropout": 0.2}, n_masks=10)
    >>> mc = mc.fit(x, y, key=0, epochs=2, progress=False)
    >>> x_new = jnp.linspace(-1.5, 1.5, 7)[:, None]
    >>> mean, var = mc.predict_mean_var(x_new)  # over the 10 fixed masks
    >>> mean.shape, bool((var > 0).all())
    ((7,), True)
    >>> mc.predict_draws(jax.random.key(1), x_new, 4).shape  # 4 fresh masks, whole batch each
    (4, 7)
    >>> same = MCDropout.load(mc.save(tempfile.mkdtemp()))  # the same masks after loading
    >>> bool(jnp.allclose(same.predict_mean_var(x_new)[0], mean))
    True
    """

    name = "dropout"
    kind = "MCDropout"

    def __init__(
        self,
        model_cls: type,
        model_kwargs: dict | None = None,
        *,
        n_masks: int = 50,
        loss: str = "mse",
        mask_seed: int = 0,
    ):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.spec = ModelSpec.of(model_cls, model_kwargs)
        self.n_masks = positive_int("n_masks", n_masks, minimum=2)
        self.mask_seed = positive_int("mask_seed", mask_seed, minimum=0)
        self.loss = loss
        self.model: nnx.Module | None = None
        self.in_ndim: int | None = None
        self.history: dict | None = None

    def _build(self):
        return with_loss_head(self.spec.build, self.loss)

    def fit(self, x: Array, y: Array, *, key: Array | int, **train_kwargs: Any) -> MCDropout:
        """Train the network with dropout on; returns ``self``.

        ``train_kwargs`` as in :func:`uqmcmc.uq.training.train`.
        """
        k_init, k_train = jax.random.split(as_key(key))
        model = self._build()(nnx.Rngs(k_init))
        if not _has_dropout(model):
            raise ValueError(
                f"{self.spec.cls.__name__}{self.spec.kwargs} has no nnx.Dropout with rate > 0: "
                "MC dropout needs one (e.g. model_kwargs={'dropout': 0.1})"
            )
        x = jnp.asarray(x, dtype=float)
        self.model, self.history = train(model, x, y, key=k_train, loss=self.loss, **train_kwargs)
        self.in_ndim = x.ndim - 1
        self._compile()
        return self

    def _compile(self) -> None:
        self.model.train()
        graphdef, params, keys, rest = split_rng(self.model)
        self.model.eval()
        in_ndim = self.in_ndim

        def one_mask(key, x):
            """Mean and aleatoric variance with ONE mask for every configuration of x."""
            batch = x.shape[: x.ndim - in_ndim]
            flat = x.reshape(math.prod(batch), *x.shape[x.ndim - in_ndim :])

            def single(xi):
                model = nnx.merge(graphdef, params, rekey(keys, key), rest, copy=True)
                return jax.tree.map(lambda a: a[0], member_mean_var(model, xi[None]))

            out = jax.vmap(single)(flat)
            return jax.tree.map(lambda a: a.reshape(*batch, *a.shape[1:]), out)

        def masks(key, x, n):
            # masks fused while they fit in cache, like ensemble members
            keys = jax.random.split(key, n)
            return map_in_chunks(lambda k: one_mask(k, x), keys, member_chunk(n, x.size))

        self._masks = jax.jit(masks, static_argnums=2)

    def _require_fit(self) -> nnx.Module:
        if self.model is None:
            raise ValueError(f"this {self.kind} is not fitted: call fit() or load() first")
        return self.model

    def _x(self, x: Array) -> Array:
        return check_inputs(x, self.in_ndim)

    # -- the UQ protocol ------------------------------------------------------------------
    def predict_mean_var(
        self, x: Array, *, epistemic_only: bool = False, key: Array | None = None
    ) -> tuple[Array, Array]:
        """Mean and variance over ``n_masks`` masks (see the class docstring)."""
        self._require_fit()
        key = jax.random.key(self.mask_seed) if key is None else as_key(key)
        return mixture_mean_var(*self._masks(key, self._x(x), self.n_masks), epistemic_only)

    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        """``n`` joint draws ``(n, *batch, *out)``: fresh masks, one per draw, whole batch."""
        self._require_fit()
        return self._masks(as_key(key), self._x(x), positive_int("n", n))[0]

    def predict_delta_mean_var(self, x: Array, x_new: Array) -> tuple[Array, Array]:
        """Mean and epistemic variance of ``f(x_new) - f(x)`` over the ``n_masks`` fixed masks
        (the same mask at both points)."""
        self._require_fit()
        key = jax.random.key(self.mask_seed)
        before = self._masks(key, self._x(x), self.n_masks)[0]
        return delta_mean_var(before, self._masks(key, self._x(x_new), self.n_masks)[0])

    @property
    def evaluations_per_mean(self) -> int:
        """Every fixed mask is evaluated for the mean."""
        return self.n_masks

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """Mean over the ``n_masks`` fixed masks (as :meth:`predict_mean_var`) and the
        variance over them of ``sum(weights * f_mask(x))``, one mask for all of ``x``."""
        self._require_fit()
        masks = self._masks(jax.random.key(self.mask_seed), self._x(x), self.n_masks)[0]
        return linear_mean_var(masks, jnp.asarray(weights, dtype=masks.dtype))

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted backend to directory ``path`` (npz + JSON, no pickle)."""
        meta = {
            "kind": self.kind,
            "model": self.spec.to_json(),
            "loss": self.loss,
            "n_masks": self.n_masks,
            "mask_seed": self.mask_seed,
            "in_ndim": self.in_ndim,
        }
        return save_state(path, state_arrays(self._require_fit(), "model/"), meta)

    @classmethod
    def load(cls, path: str | Path, *, model_cls: type | None = None) -> MCDropout:
        """Read what :meth:`save` wrote (``model_cls`` as in :meth:`DeepEnsemble.load`)."""
        arrays, meta = load_state(path, cls.kind)
        spec = ModelSpec.from_json(meta["model"], model_cls)
        self = cls(
            spec.cls,
            spec.kwargs,
            n_masks=meta["n_masks"],
            loss=meta["loss"],
            mask_seed=meta["mask_seed"],
        )
        self.model = restore_module(self._build(), arrays, "model/")
        self.in_ndim = int(meta["in_ndim"])
        self._compile()
        return self
