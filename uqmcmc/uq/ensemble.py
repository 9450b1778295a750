"""Deep ensemble: N networks trained and evaluated together with ``jax.vmap``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from uqmcmc._validation import positive_int
from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.io import ModelSpec, fill_state, load_state, save_state, state_arrays
from uqmcmc.uq.losses import LOSSES, with_loss_head
from uqmcmc.uq.members import Stacked, init_members, member_apply, train_members
from uqmcmc.uq.moments import delta_mean_var, linear_mean_var, member_mean_var, mixture_mean_var
from uqmcmc.uq.rng import as_key

Array = jax.Array

__all__ = ["DeepEnsemble", "PaperEnsemble"]


class DeepEnsemble(UQBackend):
    """Deep ensemble of ``n_members`` networks (Tzivrailis et al.: 10 residual CNNs).

    Members share the architecture ``model_cls(**model_kwargs)`` and differ in initialisation
    and data order. Training (:func:`uqmcmc.uq.members.train_members`) and prediction are
    ``jax.vmap`` over the stacked member parameters: one fused, jitted call evaluates every
    member.

    ``predict_mean_var`` returns the mixture moments over members: ``mean`` is the mean of the
    member means; ``var`` is the variance of the member means (epistemic, over members, ``ddof
    = 0``) plus the mean of the member variances (aleatoric; non-zero only when trained with
    ``loss="gaussian_nll"``). ``predict_draws`` draws members uniformly with replacement and
    returns their means: function draws, epistemic only, whose variance tends to the epistemic
    part of ``var`` (``predict_mean_var(x, epistemic_only=True)``). The fixed draws of
    per-draw chains are the members themselves (:meth:`draw_ids` are member indices,
    :meth:`predict_draw` is :meth:`predict_member`).

    Parameters
    ----------
    model_cls
        A network class following the uqmcmc convention (:class:`uqmcmc.nets.RCNN`,
        :class:`uqmcmc.nets.EnergyNet`, :class:`uqmcmc.nets.MLP` or a user's own).
    model_kwargs
        Its constructor arguments except ``rngs`` (JSON-serialisable, saved with the model).
    n_members
        Ensemble size.
    loss
        ``"mse"`` or ``"gaussian_nll"`` (members get a variance head).

    Examples
    --------
    Three tiny CNNs (``depth=0``: one 3 x 3 stencil, 4 features per site; seed 1 uses 10
    deeper ones) learn ``grad S`` of phi^4 on a 4 x 4 lattice (two epochs: the calls, not a
    useful surrogate):

    >>> import tempfile
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.nets import RCNN
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.workflows.training_data import make_dataset
    >>> data = make_dataset(Phi4(4, 0.5, 1.0), 0, 12, n_test=4)
    >>> ens = DeepEnsemble(RCNN, {"channels": 4, "depth": 0}, n_members=3)
    >>> ens = ens.fit(data.train.x, data.train.grad, key=0, epochs=2, progress=False)
    >>> ens.history["train_loss"].shape  # (epochs, members)
    (2, 3)
    >>> mean, var = ens.predict_mean_var(data.test.x)  # per site of each test field
    >>> mean.shape, var.shape, bool((var > 0).all())
    ((4, 4, 4), (4, 4, 4), True)
    >>> draws = ens.predict_draws(jax.random.key(1), data.test.x, 5)  # 5 members, whole batch
    >>> draws.shape
    (5, 4, 4, 4)
    >>> path = ens.save(tempfile.mkdtemp())
    >>> same = DeepEnsemble.load(path)
    >>> same.n_members, bool(jnp.allclose(same.predict_mean_var(data.test.x)[0], mean))
    (3, True)
    """

    name = "ensemble"
    kind = "DeepEnsemble"

    def __init__(
        self,
        model_cls: type,
        model_kwargs: dict | None = None,
        *,
        n_members: int = 10,
        loss: str = "mse",
    ):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.spec = ModelSpec.of(model_cls, model_kwargs)
        self.n_members = positive_int("n_members", n_members, minimum=2)
        self.loss = loss
        self.members: Stacked | None = None
        self.history: dict | None = None
        self._sharded = False

    # -- fitting --------------------------------------------------------------------------
    def _build(self):
        return with_loss_head(self.spec.build, self.loss)

    def fit(self, x: Array, y: Array, *, key: Array | int, **train_kwargs: Any) -> DeepEnsemble:
        """Train all members at once on ``(x, y)``; returns ``self``.

        ``train_kwargs`` are those of :func:`uqmcmc.uq.training.train` (``epochs``,
        ``batch_size``, ``optimizer``, ``validation``, ``patience``, ``progress``).
        """
        self.members, self.history = train_members(
            self._build(), x, y, key=as_key(key), n_members=self.n_members, loss=self.loss,
            **train_kwargs,
        )  # fmt: skip
        self._compile()
        return self

    def _compile(self) -> None:
        graphdef = self.members.graphdef

        chunk = self.n_members if self._sharded else None  # split over devices: one vmap

        def outputs(state, x):
            return member_apply(Stacked(graphdef, state), member_mean_var, x, chunk=chunk)

        def mean_var(state, x, epistemic_only):
            return mixture_mean_var(*outputs(state, x), epistemic_only)

        def draws(state, key, x, n, replace):
            idx = jax.random.choice(key, self.n_members, (n,), replace=replace)
            picked = jax.tree.map(lambda a: a[idx], state)
            return outputs(picked, x)[0]

        def delta(state, x, x_new):
            return delta_mean_var(outputs(state, x)[0], outputs(state, x_new)[0])

        def linear(state, x, weights):
            return linear_mean_var(outputs(state, x)[0], weights)

        self._outputs = jax.jit(outputs)
        self._mean_var = jax.jit(mean_var, static_argnums=2)
        self._draws = jax.jit(draws, static_argnums=(3, 4))
        self._delta = jax.jit(delta)
        self._linear = jax.jit(linear)

    def _require_fit(self) -> Stacked:
        if self.members is None:
            raise ValueError(f"this {self.kind} is not fitted: call fit() or load() first")
        return self.members

    def shard(self, devices: Any = None) -> DeepEnsemble:
        """Split the stacked member parameters over devices (member axis), in place; returns
        ``self``. ``devices`` as in :func:`uqmcmc.mcmc.sharding.shard_members` (``None``: all
        of ``jax.devices()``; as many as divide ``n_members``). Predictions are unchanged up
        to the order of the sums over members."""
        from uqmcmc.mcmc.sharding import shard_members

        members = self._require_fit()
        self.members = Stacked(members.graphdef, shard_members(members.state, devices))
        self._sharded = True
        self._compile()
        return self

    def member(self, i: int) -> nnx.Module:
        """Member ``i`` as a standalone network (eval mode), e.g. for a Bayesian last layer."""
        members = self._require_fit()
        if not 0 <= int(i) < self.n_members:
            raise ValueError(f"i must lie in [0, {self.n_members}), got {i!r}")
        return nnx.merge(members.graphdef, jax.tree.map(lambda a: a[int(i)], members.state))

    def predict_member(self, i: Array | int, x: Array) -> Array:
        """Member ``i``'s prediction ``(*batch, *out)``; ``i`` may be traced (one member of
        the stacked parameters is gathered, the others are not evaluated)."""
        state = self._require_fit().state
        picked = jax.tree.map(lambda a: a[jnp.asarray(i)[None]], state)
        return self._outputs(picked, jnp.asarray(x, dtype=float))[0][0]

    def draw_ids(self, key: Array, k: int) -> Array:
        """Member indices ``0 .. min(k, n_members) - 1`` (``key`` is not used): the fixed
        draws of per-draw chains are distinct members."""
        return jnp.arange(min(positive_int("k", k), self.n_members))

    def predict_draw(self, draw_id: Array | int, x: Array) -> Array:
        """Member ``draw_id``'s prediction (:meth:`predict_member`)."""
        return self.predict_member(draw_id, x)

    # -- the UQ protocol ------------------------------------------------------------------
    def predict_members(self, x: Array) -> tuple[Array, Array]:
        """Every member's mean and aleatoric variance, ``(n_members, *batch, *out)`` each."""
        return self._outputs(self._require_fit().state, jnp.asarray(x, dtype=float))

    def predict_mean_var(self, x: Array, *, epistemic_only: bool = False) -> tuple[Array, Array]:
        """Ensemble mean and variance (see the class docstring), ``(*batch, *out)`` each."""
        state = self._require_fit().state
        return self._mean_var(state, jnp.asarray(x, dtype=float), bool(epistemic_only))

    def predict_draws(self, key: Array, x: Array, n: int, *, replace: bool = True) -> Array:
        """``n`` joint draws ``(n, *batch, *out)``: each one member applied to the whole batch.

        Members are drawn uniformly with replacement (i.i.d. draws of the ensemble), or
        without it (``replace=False``, ``n <= n_members``).
        """
        n = positive_int("n", n)
        if not replace and n > self.n_members:
            raise ValueError(f"n ({n}) exceeds n_members ({self.n_members}) with replace=False")
        state = self._require_fit().state
        return self._draws(state, as_key(key), jnp.asarray(x, dtype=float), n, bool(replace))

    def predict_delta_mean_var(self, x: Array, x_new: Array) -> tuple[Array, Array]:
        """Mean and epistemic variance (over members) of ``f(x_new) - f(x)``, elementwise.

        The same member evaluates both points, so the covariance between them is kept.
        """
        state = self._require_fit().state
        return self._delta(state, jnp.asarray(x, dtype=float), jnp.asarray(x_new, dtype=float))

    @property
    def evaluations_per_mean(self) -> int:
        """Every member is evaluated for the mean."""
        return self.n_members

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """Ensemble mean ``(*batch, *out)`` and the variance over members of
        ``sum(weights * f_k(x))`` (exact; each member sees every input of ``x``)."""
        state = self._require_fit().state
        return self._linear(state, jnp.asarray(x, dtype=float), jnp.asarray(weights, float))

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted ensemble to directory ``path`` (npz + JSON, no pickle)."""
        members = self._require_fit()
        meta = {
            "kind": self.kind,
            "model": self.spec.to_json(),
            "n_members": self.n_members,
            "loss": self.loss,
        }
        return save_state(path, state_arrays(members.state, "members/"), meta)

    @classmethod
    def load(cls, path: str | Path, *, model_cls: type | None = None) -> DeepEnsemble:
        """Read what :meth:`save` wrote; ``model_cls`` is needed for a user's own network
        class unless it was registered with :func:`uqmcmc.uq.io.register_module`."""
        arrays, meta = load_state(path, cls.kind)
        spec = ModelSpec.from_json(meta["model"], model_cls)
        self = cls(spec.cls, spec.kwargs, n_members=meta["n_members"], loss=meta["loss"])
        _, eval_def, template = init_members(self._build(), jax.random.key(0), self.n_members)
        state = fill_state(template, arrays, "members/", what=f"{cls.kind} at {str(path)!r}")
        self.members = Stacked(eval_def, state)
        self._compile()
        return self


class PaperEnsemble(DeepEnsemble):
    """The deep ensemble registered as ``"paper_ensemble"``: the same backend, under its own
    registry name (the registry builds it with the plain residual CNNs and the training of
    Tzivrailis et al., :mod:`uqmcmc.uq.builtin_backends`). Saved files are a
    :class:`DeepEnsemble`'s.

    Examples
    --------
    >>> from uqmcmc.nets import RCNN
    >>> b = PaperEnsemble(RCNN, {"channels": 4, "depth": 1, "kernel_size": 3}, n_members=2)
    >>> b.name, b.kind, isinstance(b, DeepEnsemble)
    ('paper_ensemble', 'DeepEnsemble', True)
    """

    name = "paper_ensemble"
