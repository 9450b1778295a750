"""Deep kernel regression: a sparse GP on the learned features of a trained network.

The network is trained first (``uqmcmc.uq.training.train``, MSE); its last hidden features
``h`` per site then are the inputs of a GP that replaces the network's linear readout:

    y(x) = c J + A g(h(x)) + noise,     g ~ GP(0, k),

where ``A`` is the network's reduction over the ``J`` sites of an output (identity, ``J = 1``,
for a field: every site is one data point; the sum over sites for an extensive energy) and
``c`` a constant per site. ``k`` is an ARD RBF or Matern kernel; its hyperparameters, the
noise and ``M`` inducing inputs ``Z`` in feature space maximise Titsias' collapsed
variational bound (optax Adam), so no solve is ever larger than ``M x M`` and the cost is
``O(n M^2)`` in the number ``n`` of data points. The hyperparameters are fitted on a random
subset of at most ``max_points`` data points (sites of a field, configurations of an
energy); the posterior of the inducing values then uses all of them.

Why features from a separately trained network rather than learned jointly through the
marginal likelihood: joint training of many network weights by the marginal likelihood
overfits and can collapse the features (Ober, Rasmussen & van der Wilk, UAI 2021), it would
duplicate the training loop, and a fixed trained network lets the GP, the Bayesian last layer
and the ensemble be compared on the same features. Why the GP models the labels rather than
the trained network's residuals: the prior variance of a residual GP is fitted to the small
in-distribution residuals and caps the uncertainty everywhere else (measured: variance only
1.1-1.3 times larger in a data gap); a GP on the labels reverts to the label-scale prior
variance where the features leave the training data.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from uqmcmc._validation import positive, positive_int
from uqmcmc.uq import io
from uqmcmc.uq._checks import check_xy
from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.deep_kernel_gp import (
    _delta_mean_var,
    _draws,
    _Fitted,
    _linear,
    _mean_var,
    _observe,
    _out_shape,
    _Static,
)
from uqmcmc.uq.gp import (
    KERNELS,
    GPParams,
    GPPosterior,
    Obs,
    _collapsed,
    _invert,
    _optimise,
)
from uqmcmc.uq.rng import as_key
from uqmcmc.uq.training import train

Array = jax.Array

__all__ = ["DeepKernelRegression"]


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _fit_gp(static: _Static, num_inducing, n_sub, steps, state, x, y, key, learning_rate):
    """Standardise the labels, initialise, maximise the bound on a random subset of ``n_sub``
    observations, then the posterior from all of them. One compiled call."""
    k_sub, k_z = jax.random.split(key)
    _, obs = _observe(static, state, x)
    n, J, F = obs.groups.shape
    r = y.reshape(-1)
    loc = jnp.mean(r) / J  # per site
    scale = jnp.std(r)
    scale = jnp.where(scale > 0, scale, 1.0)
    r = (r - J * loc) / scale
    sites = obs.groups.reshape(n * J, F)
    spread = jnp.std(sites, axis=0)
    spread = jnp.maximum(spread, 1e-3 * jnp.max(spread) + 1e-12)
    pick = jax.random.choice(k_z, n * J, (num_inducing,), replace=n * J < num_inducing)
    log_ls = jnp.log(spread * math.sqrt(F))
    p0 = GPParams(log_ls, jnp.asarray(0.0), jnp.log(jnp.asarray(0.1)), sites[pick])
    sub = jax.random.permutation(k_sub, n)[:n_sub]
    sub_obs = Obs(obs.groups[sub], obs.weights[sub])
    params, trace = _optimise(static.kernel, p0, sub_obs, r[sub], steps, learning_rate)
    _, post = _collapsed(static.kernel, params, obs, r)
    return params, post, trace, loc, scale


class DeepKernelRegression(UQBackend):
    """Sparse GP regression on the features of a trained network (see the module docstring).

    ``predict_mean_var`` returns the posterior predictive mean and ``var`` = the GP's
    posterior variance of the function (epistemic: grows where the features leave the
    training features) plus the fitted noise variance :attr:`noise_var` (the scatter of the
    labels about the function), or the epistemic part alone with ``epistemic_only=True``.
    ``predict_draws`` are joint function draws (epistemic only), whose second moments match
    the epistemic variance and :meth:`predict_delta_mean_var` in expectation.

    Parameters
    ----------
    model_cls, model_kwargs
        The network, built as ``model_cls(**model_kwargs, rngs=...)`` (uqmcmc convention;
        ``features``, ``reduce``, ``site_axes``); constructor arguments except ``rngs``.
    kernel
        ``"rbf"``, ``"matern12"``, ``"matern32"`` or ``"matern52"`` (ARD lengthscales).
    num_inducing
        Number ``M`` of inducing inputs in feature space.
    rff_features
        Random Fourier features per draw in :meth:`predict_draws`: half as many frequencies
        (rounded up), each giving a cosine and a sine. The draws' covariance is the exact
        posterior covariance for any count (fresh frequencies per draw); the count sets how
        close to Gaussian a draw is. Measured excess kurtosis of the difference of two nearby
        points just outside the data (1-D example, RBF): +0.47 with 256, +0.24 with 512,
        +0.15 with 768, +0.11 with 1024; inside the data, and for the ``Delta S`` of a phi^4
        MALA step, it is not detectable. The cost is about linear in it (phi^4 L = 8, 16 MALA
        chains, 8 draws of 3 fields per step: 0.83 and 0.61 times the time of 512
        random-phase cosines at 768 and 512, about 27 and 20 ms per step on 2 quiet cores).
        Matern-1/2 and 3/2 frequencies are heavy-tailed: raise it for those kernels if the
        draws' tails matter.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.nets import MLP
    >>> x = jnp.linspace(-2, 2, 40)[:, None]
    >>> dkr = DeepKernelRegression(MLP, {"in_features": 1, "hidden": [4]}, num_inducing=8)
    >>> dkr = dkr.fit(x, jnp.sin(2 * x[:, 0]), key=0, epochs=2, gp_steps=20, progress=False)
    >>> mean, var = dkr.predict_mean_var(x)
    >>> mean.shape, bool(jnp.all(var > dkr.noise_var))  # epistemic + noise
    ((40,), True)
    >>> _, epi = dkr.predict_mean_var(jnp.array([[0.0], [9.0]]), epistemic_only=True)
    >>> bool(epi[1] > epi[0])  # far from the data: larger
    True
    >>> dkr.predict_draws(jax.random.key(1), x, 5).shape  # 5 joint function draws
    (5, 40)
    >>> dmean, dvar = dkr.predict_delta_mean_var(x[:3], x[1:4])  # f(x_new) - f(x)
    >>> dvar.shape
    (3,)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     back = DeepKernelRegression.load(dkr.save(pathlib.Path(d) / "dkr"))
    >>> bool(jnp.all(back.predict_mean_var(x)[0] == mean))
    True
    """

    name = "deep_kernel"
    kind = "DeepKernelRegression"

    def __init__(
        self,
        model_cls: type,
        model_kwargs: dict | None = None,
        *,
        kernel: str = "rbf",
        num_inducing: int = 64,
        rff_features: int = 768,
    ):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
        self.spec = io.ModelSpec.of(model_cls, model_kwargs)
        self.kernel = kernel
        self.num_inducing = positive_int("num_inducing", num_inducing)
        self.rff_features = positive_int("rff_features", rff_features)
        self.model: nnx.Module | None = None
        self.params: GPParams | None = None
        self.history: dict | None = None

    # -- structure ----------------------------------------------------------------------------
    def _set_model(self, model: nnx.Module) -> None:
        model.eval()
        self.model = model
        reduce = getattr(model, "reduce", "none")
        if reduce not in ("none", "sum"):
            raise ValueError(f"{type(model).__name__}.reduce must be 'none' or 'sum'")
        site_axes = int(getattr(model, "site_axes", 0)) if reduce == "sum" else 0
        self._static = _Static(nnx.graphdef(model), site_axes, self.kernel, self.rff_features)

    def _set_fitted(self, params: GPParams, post: GPPosterior) -> None:
        """Store the GP, and every array prediction needs, once, as :class:`_Fitted`."""
        self.params, self.post = params, post
        loc, scale = jnp.float32(self.y_loc), jnp.float32(self.y_scale)
        self._arrays = _Fitted(nnx.state(self.model), params, _invert(post), loc, scale)

    def _fitted(self) -> _Fitted:
        if self.params is None:
            raise ValueError(f"this {self.kind} is not fitted: call fit() or load() first")
        return self._arrays

    # -- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        x: Array,
        y: Array,
        *,
        key: Array | int,
        model: nnx.Module | None = None,
        gp_steps: int = 1000,
        learning_rate: float = 1e-2,
        max_points: int = 2048,
        **train_kwargs: Any,
    ) -> DeepKernelRegression:
        """Train the network (MSE) unless ``model`` is given, then fit the GP on its features.

        Parameters
        ----------
        x, y
            Inputs ``(N, *in)`` and labels ``(N, *out)``.
        key
            PRNG key or seed (network initialisation and training, subset, inducing inputs).
        model
            An already trained instance of ``model_cls`` used as is (e.g. shared with a
            Bayesian last layer); otherwise one is built and trained here.
        gp_steps, learning_rate
            Adam steps and rate on the collapsed bound.
        max_points
            Size of the random subset of data points (sites of a field, configurations of an
            energy) used to fit the hyperparameters; the posterior uses every data point.
        train_kwargs
            As in :func:`uqmcmc.uq.training.train` (``epochs``, ``batch_size``,
            ``optimizer``, ``validation``, ``patience``, ``progress``); not with ``model``.

        Returns
        -------
        self, fitted; ``history`` holds the network's training history (``train``), the bound
        per GP step (``gp_bound``) and the subset size (``gp_subset``).
        """
        x, y = check_xy(x, y)
        k_init, k_train, k_fit = jax.random.split(as_key(key), 3)
        self.history = {}
        if model is None:
            if train_kwargs.get("loss", "mse") != "mse":
                raise ValueError("DeepKernelRegression trains its network with loss='mse'")
            model, self.history["train"] = train(
                self.spec.build(k_init), x, y, key=k_train, **train_kwargs
            )
        elif not isinstance(model, self.spec.cls):
            raise ValueError(
                f"model must be a {self.spec.cls.__name__}, got {type(model).__name__}"
            )
        elif train_kwargs:
            raise ValueError(f"train_kwargs {sorted(train_kwargs)} make no sense with model=")
        else:
            model = nnx.clone(model)
        self._set_model(model)
        steps = positive_int("gp_steps", gp_steps)
        max_points = positive_int("max_points", max_points, minimum=2)
        state = nnx.state(model)
        out = _out_shape(self._static, state, x)
        if out != y.shape:
            raise ValueError(f"y must have shape {out} to match the network, got {y.shape}")
        n_sub = min(math.prod(out), max_points)
        rate = positive("learning_rate", learning_rate)
        params, post, trace, loc, scale = _fit_gp(
            self._static, self.num_inducing, n_sub, steps, state, x, y, k_fit, rate
        )
        if not all(bool(jnp.all(jnp.isfinite(a))) for a in (*params, *post)):
            raise ValueError("the GP fit diverged (non-finite values): lower learning_rate")
        self.y_loc, self.y_scale = float(loc), float(scale)
        self._set_fitted(params, post)
        self.history["gp_bound"] = -np.asarray(trace)
        self.history["gp_subset"] = n_sub
        return self

    # -- prediction ---------------------------------------------------------------------------
    @property
    def noise_var(self) -> float:
        """Fitted label-noise variance (label units)."""
        self._fitted()
        return float(jnp.exp(self.params.log_noise)) * self.y_scale**2

    def predict_mean_var(self, x: Array, *, epistemic_only: bool = False) -> tuple[Array, Array]:
        """Posterior predictive mean and variance per output element (see the class
        docstring), ``(*batch, *out)`` each."""
        fit = self._fitted()
        return _mean_var(self._static, fit, jnp.asarray(x, dtype=float), bool(epistemic_only))

    def predict_delta_mean_var(self, x: Array, x_new: Array) -> tuple[Array, Array]:
        """Exact posterior mean and epistemic variance of ``f(x_new) - f(x)``, elementwise
        (the GP covariance between the two points is kept)."""
        x, x_new = jnp.asarray(x, dtype=float), jnp.asarray(x_new, dtype=float)
        return _delta_mean_var(self._static, self._fitted(), x, x_new)

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """Posterior mean and the exact epistemic variance of ``sum(weights * f(x))``."""
        x, weights = jnp.asarray(x, dtype=float), jnp.asarray(weights, dtype=float)
        return _linear(self._static, self._fitted(), x, weights)

    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        """``n`` joint draws ``(n, *batch, *out)``: each one function drawn from the GP
        posterior (pathwise, ``rff_features`` random Fourier features with fresh frequencies)
        and evaluated on the whole batch. Epistemic only. The draws are computed one after
        the other (``lax.map``), so memory does not grow with ``n``."""
        fit = self._fitted()
        keys = jax.random.split(as_key(key), positive_int("n", n))
        return _draws(self._static, fit, keys, jnp.asarray(x, dtype=float))

    # -- save / load --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write network and GP to directory ``path`` (npz + JSON, no pickle)."""
        self._fitted()
        arrays = io.state_arrays(self.model, "model/")
        arrays.update({f"gp/{k}": v for k, v in self.params._asdict().items()})
        arrays.update({f"post/{k}": v for k, v in self.post._asdict().items()})
        meta = {
            "kind": self.kind,
            "model": self.spec.to_json(),
            "kernel": self.kernel,
            "num_inducing": self.num_inducing,
            "rff_features": self.rff_features,
            "y_loc": self.y_loc,
            "y_scale": self.y_scale,
        }
        return io.save_state(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path, *, model_cls: type | None = None) -> DeepKernelRegression:
        """Read what :meth:`save` wrote; ``model_cls`` is needed for a user's own network
        class unless it was registered with :func:`uqmcmc.uq.io.register_module`."""
        arrays, meta = io.load_state(path, cls.kind)
        spec = io.ModelSpec.from_json(meta["model"], model_cls)
        self = cls(
            spec.cls,
            spec.kwargs,
            kernel=meta["kernel"],
            num_inducing=meta["num_inducing"],
            rff_features=meta["rff_features"],
        )
        gp = {k: arrays.pop(f"gp/{k}", None) for k in GPParams._fields}
        post = {k: arrays.pop(f"post/{k}", None) for k in GPPosterior._fields}
        model = io.restore_module(spec.build, arrays, "model/")
        F = model.readout.in_features
        M = self.num_inducing
        shapes = {"log_lengthscale": (F,), "log_signal": (), "log_noise": (), "z": (M, F)}
        shapes.update({"luu": (M, M), "lb": (M, M), "c": (M,)})
        for k, value in {**gp, **post}.items():
            if value is None or value.shape != shapes[k]:
                got = None if value is None else value.shape
                raise ValueError(f"{str(path)!r}: {k} should have shape {shapes[k]}, got {got}")
        self.y_loc, self.y_scale = float(meta["y_loc"]), float(meta["y_scale"])
        self._set_model(model)
        self._set_fitted(
            GPParams(**{k: jnp.asarray(v) for k, v in gp.items()}),
            GPPosterior(**{k: jnp.asarray(v) for k, v in post.items()}),
        )
        return self
