"""Bayesian last layer: closed-form Bayesian linear regression on a trained network's features."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from uqmcmc._validation import positive, positive_int
from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.io import ModelSpec, load_state, restore_module, save_state, state_arrays
from uqmcmc.uq.moments import contract
from uqmcmc.uq.rng import as_key
from uqmcmc.uq.training import train

Array = jax.Array

__all__ = ["BayesianLastLayer", "LastLayerPosterior", "evidence_fit"]


class LastLayerPosterior(NamedTuple):
    """Gaussian posterior ``N(mean, cov)`` of the readout weights (bias last).

    ``factor`` satisfies ``factor @ factor.T == cov`` (exact draws ``mean + factor @ z``);
    ``alpha`` and ``beta`` are the prior and noise precisions, ``log_evidence`` the log
    marginal likelihood at them, ``gamma`` the effective number of well-determined weights.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> phi = np.c_[rng.normal(size=(200, 2)), np.ones(200)]
    >>> post = evidence_fit(phi, phi @ np.array([1.0, -1.0, 0.0]) + 0.1 * rng.normal(size=200))
    >>> post.mean.shape, post.cov.shape, bool(np.allclose(post.factor @ post.factor.T, post.cov))
    ((3,), (3, 3), True)
    >>> 0 < post.gamma <= 3
    True
    """

    mean: Array
    cov: Array
    factor: Array
    alpha: float
    beta: float
    log_evidence: float
    gamma: float


def evidence_fit(
    phi: np.ndarray,
    y: np.ndarray,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    max_iter: int = 500,
    tol: float = 1e-8,
) -> LastLayerPosterior:
    """Bayesian linear regression ``y = phi @ w + noise`` with evidence-maximised precisions.

    Prior ``w ~ N(0, I / alpha)``, noise ``N(0, 1 / beta)``. ``alpha`` and ``beta`` not given
    are found by MacKay's fixed-point iteration on the marginal likelihood (Bishop, PRML
    3.5.2), in float64 through the eigen-decomposition of ``phi.T @ phi``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> phi = np.c_[rng.normal(size=(500, 2)), np.ones(500)]
    >>> y = phi @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=500)
    >>> post = evidence_fit(phi, y)
    >>> np.round(post.mean, 1).tolist(), round(float(post.beta) ** -0.5, 2)
    ([1.0, -2.0, 0.5], 0.1)
    """
    phi = np.asarray(phi, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if phi.ndim != 2 or y.shape != phi.shape[:1]:
        raise ValueError(f"phi must be (N, P) and y (N,), got {phi.shape} and {y.shape}")
    n, p = phi.shape
    gram, proj, yy = phi.T @ phi, phi.T @ y, y @ y
    eig, vec = np.linalg.eigh(gram)
    eig = np.clip(eig, 0.0, None)
    proj_v = vec.T @ proj
    a = 1.0 if alpha is None else float(positive("alpha", alpha))
    b = 1.0 / max(np.var(y), 1e-12) if beta is None else float(positive("beta", beta))

    def solve(a, b):
        lam = a + b * eig
        m_v = b * proj_v / lam  # posterior mean in the eigenbasis
        # floor: a fit without residual (a network that represents the labels exactly) gets a
        # noise of 1e-6 of the labels' rms, not an infinite precision
        resid = max(yy - 2 * m_v @ proj_v + (eig * m_v) @ m_v, 1e-12 * yy, 1e-300)
        gamma = float(np.sum(b * eig / lam))
        return lam, m_v, resid, gamma

    for _ in range(positive_int("max_iter", max_iter)):
        lam, m_v, resid, gamma = solve(a, b)
        a_new = a if alpha is not None else gamma / max(m_v @ m_v, 1e-300)
        b_new = b if beta is not None else max(n - gamma, 1e-12) / resid
        done = abs(a_new - a) <= tol * a and abs(b_new - b) <= tol * b
        a, b = a_new, b_new
        if done:
            break
    lam, m_v, resid, gamma = solve(a, b)
    log_ev = 0.5 * (
        p * np.log(a)
        + n * np.log(b)
        - b * resid
        - a * (m_v @ m_v)
        - np.sum(np.log(lam))
        - n * np.log(2 * np.pi)
    )
    factor = vec / np.sqrt(lam)
    return LastLayerPosterior(
        mean=vec @ m_v,
        cov=factor @ factor.T,
        factor=factor,
        alpha=float(a),
        beta=float(b),
        log_evidence=float(log_ev),
        gamma=gamma,
    )


def design(model: nnx.Module, x: Array) -> Array:
    """Regression rows ``[features, 1]`` per output element, ``(*batch, *out, F + 1)``.

    Per site for a field network (every site is a data point); summed over sites for an energy
    network (``reduce == "sum"``), matching the convention's readout.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from uqmcmc.nets import RCNN, EnergyNet
    >>> x = jnp.zeros((2, 4, 4))
    >>> design(RCNN(channels=3, depth=0, rngs=nnx.Rngs(0)), x).shape  # one row per site
    (2, 4, 4, 4)
    >>> design(EnergyNet(channels=3, depth=0, rngs=nnx.Rngs(0)), x).shape  # one per field
    (2, 4)
    """
    h = model.features(x)
    rows = jnp.concatenate([h, jnp.ones((*h.shape[:-1], 1), h.dtype)], axis=-1)
    if getattr(model, "reduce", "none") == "sum":
        n = int(getattr(model, "site_axes", 0))
        rows = jnp.sum(rows, axis=tuple(range(-n - 1, -1))) if n else rows
    return rows


class BayesianLastLayer(UQBackend):
    """Bayesian last layer over a trained network following the uqmcmc convention.

    The network (trained here with MSE, or passed already trained to :meth:`fit`) is frozen;
    its readout is replaced by Bayesian linear regression on the last hidden features
    (:func:`evidence_fit`): for a field network every site of every configuration is a data
    point; for an energy network the features are summed over sites. The posterior of the
    readout weights is Gaussian in closed form and the prior and noise precisions maximise the
    evidence.

    ``predict_mean_var`` returns the posterior predictive mean and ``var = phi^T cov phi +
    1/beta``: epistemic (weight uncertainty) plus the fitted noise variance (``1/beta``,
    everything the features cannot explain), or epistemic alone with ``epistemic_only=True``.
    ``predict_draws`` are exact Gaussian draws of the weights, each applied to the whole batch
    (function draws, epistemic only); :meth:`predict_delta_mean_var` gives the exact
    closed-form moments of ``f(x_new) - f(x)``.

    Parameters
    ----------
    model_cls, model_kwargs
        A network following the uqmcmc convention (``features``, ``readout``, ``reduce``);
        constructor arguments except ``rngs``.
    alpha, beta
        Fix the prior / noise precision instead of maximising the evidence.

    Examples
    --------
    A tiny CNN (``depth=0``: one 3 x 3 stencil, 4 features per site) learns ``grad S`` of
    phi^4 on a 4 x 4 lattice (two epochs: the calls, not a useful surrogate); every site of
    every training field is one regression row:

    >>> import tempfile
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.nets import RCNN
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.workflows.training_data import make_dataset
    >>> data = make_dataset(Phi4(4, 0.5, 1.0), 0, 12, n_test=4)
    >>> bll = BayesianLastLayer(RCNN, {"channels": 4, "depth": 0})
    >>> bll = bll.fit(data.train.x, data.train.grad, key=0, epochs=2, progress=False)
    >>> bll.posterior.mean.shape, bll.posterior.beta > 0  # 4 features + bias
    ((5,), True)
    >>> mean, var = bll.predict_mean_var(data.test.x)
    >>> mean.shape, bool((var > 1 / bll.posterior.beta).all())  # epistemic + noise
    ((4, 4, 4), True)
    >>> bll.predict_draws(jax.random.key(1), data.test.x, 5).shape
    (5, 4, 4, 4)
    >>> same = BayesianLastLayer.load(bll.save(tempfile.mkdtemp()))
    >>> bool(jnp.allclose(same.predict_mean_var(data.test.x)[0], mean))
    True
    """

    name = "last_layer"
    kind = "BayesianLastLayer"

    def __init__(
        self,
        model_cls: type,
        model_kwargs: dict | None = None,
        *,
        alpha: float | None = None,
        beta: float | None = None,
    ):
        self.spec = ModelSpec.of(model_cls, model_kwargs)
        self.alpha = None if alpha is None else float(positive("alpha", alpha))
        self.beta = None if beta is None else float(positive("beta", beta))
        self.model: nnx.Module | None = None
        self.posterior: LastLayerPosterior | None = None
        self.history: dict | None = None

    def fit(
        self,
        x: Array,
        y: Array,
        *,
        key: Array | int,
        model: nnx.Module | None = None,
        **train_kwargs: Any,
    ) -> BayesianLastLayer:
        """Train the network (MSE) unless ``model`` is given, then fit the last layer.

        With ``loss="energy_force"`` (labels from
        :func:`~uqmcmc.uq.losses.energy_force_labels`) the network is trained on energies and
        gradients, and the last layer's posterior is fitted to both: one design row per energy
        and one per gradient component (the gradient of the features), one noise level for all.

        Parameters
        ----------
        x, y
            Training inputs ``(n, *in)`` and targets ``(n, *out)``.
        key
            PRNG key or seed for initialisation and training.
        model
            An already trained instance of ``model_cls`` (its weights are copied, not
            retrained); the last layer is fitted on ``(x, y)``.
        train_kwargs
            As in :func:`uqmcmc.uq.training.train` (not with ``model``).
        """
        x, y = jnp.asarray(x, dtype=float), jnp.asarray(y, dtype=float)
        loss = train_kwargs.get("loss", "mse")
        if loss not in ("mse", "energy_force"):
            raise ValueError(
                "the network under a Bayesian last layer is trained with loss 'mse' or "
                f"'energy_force', got {loss!r}"
            )
        if model is None:
            k_init, k_train = jax.random.split(as_key(key))
            model, self.history = train(self.spec.build(k_init), x, y, key=k_train, **train_kwargs)
        else:
            if not isinstance(model, self.spec.cls):
                raise ValueError(
                    f"model must be a {self.spec.cls.__name__}, got {type(model).__name__}"
                )
            if train_kwargs:
                raise ValueError(f"train_kwargs {sorted(train_kwargs)} make no sense with model=")
            model = nnx.clone(model)
            model.eval()
        self.model = model
        self._compile()
        rows = np.asarray(self._design(nnx.state(model), x))
        if loss == "energy_force":  # energy rows and one row per gradient component
            grad_rows = np.asarray(self._grad_design(nnx.state(model), x))
            rows = np.concatenate([rows[:, None], grad_rows.reshape(len(x), -1, rows.shape[-1])],
                                  axis=1)  # fmt: skip
        if rows.shape[:-1] != y.shape:
            raise ValueError(f"y has shape {y.shape}, the network's output is {rows.shape[:-1]}")
        self.posterior = evidence_fit(
            rows.reshape(-1, rows.shape[-1]), np.asarray(y).reshape(-1), alpha=self.alpha,
            beta=self.beta,
        )  # fmt: skip
        self._set_arrays()
        return self

    def _compile(self) -> None:
        graphdef = nnx.graphdef(self.model)

        def rows(state, x):
            return design(nnx.merge(graphdef, state), x)

        # Quadratic forms r^T cov r as |factor^T r|^2: non-negative by construction (in float32
        # r^T cov r of an ill-conditioned cov can come out negative).
        def quad(r, post):
            return jnp.sum(jnp.square(r @ post["factor"]), axis=-1)

        def mean_var(state, post, x, noise):
            phi = rows(state, x)
            return phi @ post["mean"], quad(phi, post) + noise

        def draws(state, post, key, x, n):
            z = jax.random.normal(key, (n, post["mean"].shape[0]))
            w = post["mean"] + z @ post["factor"].T
            return jnp.einsum("...p,np->n...", rows(state, x), w)

        def delta(state, post, x, x_new):
            d = rows(state, x_new) - rows(state, x)
            return d @ post["mean"], quad(d, post)

        def linear(state, post, x, weights):
            phi = rows(state, x)
            g = contract(jnp.moveaxis(phi, -1, 0), weights)  # the functional's row, (P,)
            return phi @ post["mean"], quad(g, post)

        def grad_rows(state, x):  # d(design)/dx per configuration, (n, *in, P)
            one = lambda z: rows(state, z[None])[0]  # noqa: E731
            jac = jax.vmap(jax.jacfwd(one))(x)  # (n, P, *in)
            return jnp.moveaxis(jac, 1, -1)

        self._design = jax.jit(rows)
        self._grad_design = jax.jit(grad_rows)
        self._mean_var = jax.jit(mean_var)
        self._draws = jax.jit(draws, static_argnums=4)
        self._delta = jax.jit(delta)
        self._linear = jax.jit(linear)

    def _set_arrays(self) -> None:
        post = self.posterior
        self._post = {k: jnp.asarray(getattr(post, k), jnp.float32) for k in ("mean", "cov")}
        self._post["factor"] = jnp.asarray(post.factor, jnp.float32)

    def _require_fit(self):
        if self.posterior is None:
            raise ValueError(f"this {self.kind} is not fitted: call fit() or load() first")
        return nnx.state(self.model), self._post

    # -- the UQ protocol ------------------------------------------------------------------
    def predict_mean_var(self, x: Array, *, epistemic_only: bool = False) -> tuple[Array, Array]:
        """Posterior predictive mean and variance (see the class docstring)."""
        state, post = self._require_fit()
        noise = 0.0 if epistemic_only else 1.0 / self.posterior.beta
        return self._mean_var(state, post, jnp.asarray(x, dtype=float), noise)

    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        """``n`` joint draws ``(n, *batch, *out)``: exact Gaussian weight draws, whole batch."""
        state, post = self._require_fit()
        n = positive_int("n", n)
        return self._draws(state, post, as_key(key), jnp.asarray(x, dtype=float), n)

    def predict_delta_mean_var(self, x: Array, x_new: Array) -> tuple[Array, Array]:
        """Exact mean and epistemic variance of ``f(x_new) - f(x)``, elementwise."""
        state, post = self._require_fit()
        return self._delta(
            state, post, jnp.asarray(x, dtype=float), jnp.asarray(x_new, dtype=float)
        )

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """Posterior mean and the exact epistemic variance ``g' Cov g`` of
        ``sum(weights * f(x))``, ``g`` the same functional of the regression rows."""
        state, post = self._require_fit()
        x = jnp.asarray(x, dtype=float)
        return self._linear(state, post, x, jnp.asarray(weights, dtype=float))

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted backend to directory ``path`` (npz + JSON, no pickle)."""
        self._require_fit()
        post = self.posterior
        arrays = state_arrays(self.model, "model/")
        arrays.update({f"posterior/{k}": getattr(post, k) for k in ("mean", "cov", "factor")})
        meta = {
            "kind": self.kind,
            "model": self.spec.to_json(),
            "fixed_alpha": self.alpha,
            "fixed_beta": self.beta,
            "posterior": {k: getattr(post, k) for k in ("alpha", "beta", "log_evidence", "gamma")},
        }
        return save_state(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path, *, model_cls: type | None = None) -> BayesianLastLayer:
        """Read what :meth:`save` wrote (``model_cls`` as in :meth:`DeepEnsemble.load`)."""
        arrays, meta = load_state(path, cls.kind)
        where = f"{str(Path(path) / 'meta.json')!r}"
        posterior = meta.get("posterior")
        fields = ("alpha", "beta", "log_evidence", "gamma")
        if not isinstance(posterior, dict) or set(posterior) != set(fields):
            raise ValueError(f"{where}: field 'posterior' must hold {list(fields)}")
        for name, value in (
            ("posterior.alpha", posterior["alpha"]),
            ("posterior.beta", posterior["beta"]),
            ("fixed_alpha", meta.get("fixed_alpha")),
            ("fixed_beta", meta.get("fixed_beta")),
        ):
            if name.startswith("fixed") and value is None:
                continue
            try:
                positive(name, value)
            except ValueError as err:
                raise ValueError(f"{where}: {err} (a precision)") from None
        for name in ("model", "fixed_alpha", "fixed_beta"):
            if name not in meta:
                raise ValueError(f"{where}: field {name!r} is missing")
        spec = ModelSpec.from_json(meta["model"], model_cls)
        self = cls(spec.cls, spec.kwargs, alpha=meta["fixed_alpha"], beta=meta["fixed_beta"])
        post = {k: arrays.pop(f"posterior/{k}", None) for k in ("mean", "cov", "factor")}
        self.model = restore_module(spec.build, arrays, "model/")
        width = self.model.readout.in_features + 1
        for k, shape in (("mean", (width,)), ("cov", (width, width)), ("factor", (width, width))):
            if post[k] is None or post[k].shape != shape:
                got = None if post[k] is None else post[k].shape
                raise ValueError(f"{str(path)!r}: posterior/{k} should be {shape}, got {got}")
        cov = np.asarray(post["cov"], dtype=float)
        eig = np.linalg.eigvalsh(0.5 * (cov + cov.T))
        if not np.allclose(cov, cov.T, rtol=1e-4, atol=1e-8 * np.abs(cov).max()) or eig.min() <= 0:
            raise ValueError(
                f"{str(path)!r}: posterior/cov must be symmetric positive definite (a posterior "
                f"precision), smallest eigenvalue {eig.min():.3g}"
            )
        self.posterior = LastLayerPosterior(**post, **meta["posterior"])
        self._compile()
        self._set_arrays()
        return self
