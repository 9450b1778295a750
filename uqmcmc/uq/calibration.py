"""Calibration of a UQ backend: accuracy, coverage, calibration error, residual normality,
and variance recalibration (sigma scaling) returning a wrapped backend with the same protocol.

Every statistic treats each output element (each site of a field, each energy) as one
prediction ``N(mean, var)`` of the label. Elements of one field are correlated, so p-values and
counts are descriptive rather than independent-sample tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as sps

from uqmcmc._validation import positive_int
from uqmcmc.uq import io, registry
from uqmcmc.uq.base import UQBackend, predict_linear
from uqmcmc.uq.fixed import FixedDraw, draw_ids

Array = jax.Array

__all__ = ["metrics", "metrics_from_predictions", "recalibrate", "sigma_scale", "Recalibrated"]

#: Central-interval probabilities whose coverage :func:`metrics` reports.
COVERAGE_LEVELS = (0.5, 0.9, 0.95)

#: The wrapped backend's class name in files saved before the registry -> its registry name.
_LEGACY_INNER = {
    "DeepEnsemble": "ensemble",
    "MCDropout": "dropout",
    "BayesianLastLayer": "last_layer",
    "NumPyroBNN": "bnn",
    "DeepKernelRegression": "deep_kernel",
    "Recalibrated": "recalibrated",
}


def metrics_from_predictions(mean, var, y, *, n_qq: int = 200) -> dict[str, Any]:
    """Calibration metrics of Gaussian predictions ``N(mean, var)`` against labels ``y``.

    Parameters
    ----------
    mean, var, y
        Arrays of one shape; ``var > 0`` and everything finite.
    n_qq
        Number of QQ points returned (evenly spaced probabilities).

    Returns
    -------
    dict with
        ``n`` number of elements; ``nll`` mean Gaussian negative log-likelihood per element;
        ``rmse``; ``rel_rmse`` = ``rmse / rms(y)``; ``z_mean``, ``z_var`` of the z-scores
        ``(y - mean) / sqrt(var)`` (0 and 1 when calibrated); ``coverage_50``, ``coverage_90``,
        ``coverage_95`` fractions of labels inside the central intervals;
        ``calibration_error`` mean squared gap between expected and observed quantile levels
        (Kuleshov et al. 2018, 99 levels) and ``miscalibration_area`` the mean absolute gap
        (the area between the calibration curve and the diagonal); ``sharpness``
        ``sqrt(mean(var))``; ``excess_kurtosis`` of the z-scores (0 for Gaussian, > 0 heavy
        tails); ``normality_stat``, ``normality_pvalue`` of D'Agostino-Pearson's test on the
        z-scores; ``qq_theoretical``, ``qq_observed`` standard-normal vs z-score quantiles.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).normal(size=4000)
    >>> m = metrics_from_predictions(np.zeros(4000), np.ones(4000), y)
    >>> round(m["coverage_90"], 2), round(m["z_var"], 1), m["qq_observed"].shape
    (0.9, 1.0, (200,))
    """
    n_qq = positive_int("n_qq", n_qq, minimum=2)
    mean, var, y = (np.asarray(a, dtype=np.float64) for a in (mean, var, y))
    if not mean.shape == var.shape == y.shape:
        raise ValueError(
            f"mean, var and y must have one shape, got {mean.shape}, {var.shape}, {y.shape}"
        )
    if mean.size < 2:
        raise ValueError(f"y must hold at least 2 elements, got {mean.size}")
    for name, a in (("mean", mean), ("var", var), ("y", y)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite")
    if not np.all(var > 0):
        raise ValueError(f"predicted var must be > 0 everywhere, min is {var.min()!r}")
    mean, var, y = mean.ravel(), var.ravel(), y.ravel()
    resid = y - mean
    z = resid / np.sqrt(var)
    out: dict[str, Any] = {
        "n": int(y.size),
        "nll": float(np.mean(0.5 * np.log(2 * np.pi * var) + 0.5 * z**2)),
        "rmse": float(np.sqrt(np.mean(resid**2))),
        "rel_rmse": float(np.sqrt(np.mean(resid**2) / np.mean(y**2))),
        "z_mean": float(z.mean()),
        "z_var": float(z.var()),
    }
    for p in COVERAGE_LEVELS:
        out[f"coverage_{round(100 * p)}"] = float(np.mean(np.abs(z) <= sps.norm.ppf(0.5 + p / 2)))
    levels = np.linspace(0.01, 0.99, 99)
    observed = np.mean(sps.norm.cdf(z)[:, None] <= levels, axis=0)
    out["calibration_error"] = float(np.mean((observed - levels) ** 2))
    out["miscalibration_area"] = float(np.mean(np.abs(observed - levels)))
    out["sharpness"] = float(np.sqrt(var.mean()))
    out["excess_kurtosis"] = float(sps.kurtosis(z, fisher=True))
    if z.size >= 20:
        test = sps.normaltest(z)
        out["normality_stat"], out["normality_pvalue"] = float(test.statistic), float(test.pvalue)
    else:
        out["normality_stat"] = out["normality_pvalue"] = float("nan")
    probs = (np.arange(n_qq) + 0.5) / n_qq
    out["qq_theoretical"] = sps.norm.ppf(probs)
    out["qq_observed"] = np.quantile(z, probs)
    return out


def metrics(backend: Any, x: Array, y: Array, *, n_qq: int = 200) -> dict[str, Any]:
    """Calibration metrics of ``backend.predict_mean_var(x)`` against labels ``y``.

    See :func:`metrics_from_predictions` for the keys. ``var`` is whatever the backend returns
    (epistemic only for most backends: then ``z_var > 1`` on noisy labels is expected).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Unit:  # predicts N(0, 1) everywhere
    ...     def predict_mean_var(self, x):
    ...         return jnp.zeros(x.shape[0]), jnp.ones(x.shape[0])
    ...     def predict_draws(self, key, x, n):
    ...         return jax.random.normal(key, (n, x.shape[0]))
    >>> y = jax.random.normal(jax.random.key(1), (2000,))
    >>> round(metrics(Unit(), jnp.zeros((2000, 1)), y)["coverage_95"], 2)
    0.95
    """
    mean, var = backend.predict_mean_var(x)
    if np.shape(y) != np.shape(mean):
        raise ValueError(f"y must have the prediction's shape {np.shape(mean)}, got {np.shape(y)}")
    return metrics_from_predictions(mean, var, y, n_qq=n_qq)


def sigma_scale(mean, var, y) -> float:
    """The variance scale ``s^2 = mean(z^2)`` minimising the Gaussian NLL of ``N(mean, s^2 var)``.

    Examples
    --------
    >>> import numpy as np
    >>> y = 3.0 * np.random.default_rng(0).normal(size=10000)
    >>> round(sigma_scale(np.zeros(10000), np.ones(10000), y), 1)
    9.0
    """
    m = metrics_from_predictions(mean, var, y, n_qq=2)
    return float(m["z_var"] + m["z_mean"] ** 2)


class Recalibrated(UQBackend):
    """A backend whose predictive variance is scaled by a constant ``scale`` (sigma scaling).

    ``predict_mean_var`` returns the wrapped backend's mean and ``scale * var``;
    ``predict_draws`` returns ``mean + sqrt(scale) * (draw - mean)`` for the wrapped backend's
    joint draws, so draws keep their joint structure and their covariance is scaled by
    ``scale``. ``var`` contains what the wrapped backend's ``var`` contains, rescaled
    (``epistemic_only`` is passed on). The fixed draws (:meth:`draw_ids`,
    :meth:`predict_draw`) are the wrapped backend's, spread the same way. Build it with
    :func:`recalibrate`; ``fit`` is not offered (refit the wrapped backend, then recalibrate
    again).

    Parameters
    ----------
    backend
        A fitted backend (``predict_mean_var``, ``predict_draws``; to save, one of the
        :mod:`uqmcmc.uq.registry`'s backends or another ``Recalibrated``).
    scale
        Variance multiplier ``s^2 > 0``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Shifted:  # f(x) = x + c with c ~ N(0, 1), one c per joint draw
    ...     def predict_mean_var(self, x):
    ...         return x, jnp.ones_like(x)
    ...     def predict_draws(self, key, x, n):
    ...         return x + jax.random.normal(key, (n,) + (1,) * x.ndim)
    >>> wide = Recalibrated(Shifted(), 4.0)
    >>> mean, var = wide.predict_mean_var(jnp.array([0.0, 1.0]))
    >>> mean.tolist(), var.tolist()
    ([0.0, 1.0], [4.0, 4.0])
    >>> draws = wide.predict_draws(jax.random.key(0), jnp.array([0.0, 1.0]), 1000)
    >>> draws.shape, round(float(draws[:, 0].std()), 0)  # spread doubled, draws still joint
    ((1000, 2), 2.0)
    """

    name = "recalibrated"
    kind = "Recalibrated"

    def __init__(self, backend: Any, scale: float):
        scale = float(scale)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
        self.backend = backend
        self.scale = scale

    def fit(self, x: Array, y: Array, *, key: Array | int, **settings: Any) -> Recalibrated:
        """Not offered: refit the wrapped backend, then :func:`recalibrate` again."""
        raise NotImplementedError(
            "a Recalibrated backend is not fitted: refit the wrapped backend, then recalibrate"
        )

    def predict_mean_var(
        self, x: Array, *, epistemic_only: bool = False, **kwargs: Any
    ) -> tuple[Array, Array]:
        """The wrapped backend's mean and ``scale`` times its variance (``epistemic_only`` and
        ``kwargs`` are passed on; ``epistemic_only`` only when true, so a wrapped object
        without that argument still works)."""
        if epistemic_only:
            kwargs["epistemic_only"] = True
        mean, var = self.backend.predict_mean_var(x, **kwargs)
        return mean, self.scale * var

    def _spread(self, draws: Array, x: Array) -> Array:
        mean, _ = self.backend.predict_mean_var(x)
        return mean + jnp.sqrt(self.scale) * (draws - mean)

    def predict_draws(self, key: Array, x: Array, n: int) -> Array:
        """The wrapped backend's joint draws, spread about its mean by ``sqrt(scale)``."""
        return self._spread(self.backend.predict_draws(key, x, n), x)

    def draw_ids(self, key: Array, k: int) -> Array:
        """The wrapped backend's fixed draws (:func:`uqmcmc.uq.fixed.draw_ids`)."""
        return draw_ids(self.backend, key, k)

    def predict_draw(self, draw_id: Array, x: Array) -> Array:
        """The wrapped backend's fixed draw ``draw_id``, spread about its mean by
        ``sqrt(scale)``."""
        return self._spread(FixedDraw(self.backend, draw_id).predict(x), x)

    @property
    def evaluations_per_mean(self) -> int:
        """The wrapped backend's (1 for an object that does not say)."""
        inner = self.backend
        return inner.evaluations_per_mean if isinstance(inner, UQBackend) else 1

    def predict_linear(self, x: Array, weights: Array) -> tuple[Array, Array]:
        """The wrapped backend's :func:`~uqmcmc.uq.base.predict_linear`, variance times
        ``scale``."""
        mean, var = predict_linear(self.backend, x, weights)
        return mean, self.scale * var

    def predict_delta_mean_var(self, x: Array, x_new: Array) -> tuple[Array, Array]:
        """The wrapped backend's moments of ``f(x_new) - f(x)``, variance times ``scale``."""
        mean, var = self.backend.predict_delta_mean_var(x, x_new)
        return mean, self.scale * var

    def save(self, path: str | Path) -> Path:
        """Save to directory ``path``: the scale, and the wrapped backend in ``path/inner``.

        The wrapped backend must be a registered uqmcmc backend (:mod:`uqmcmc.uq.registry`, a
        user's included) or another ``Recalibrated``: its registry name is recorded, and
        :meth:`load` rebuilds it through the registry only, never importing a name found in
        the file.
        """
        name = _registry_name(self.backend)
        if name is None:
            raise ValueError(
                "can only save a wrapped uqmcmc backend (one registered in uqmcmc.uq.registry), "
                f"got {type(self.backend).__name__}"
            )
        path = Path(path)
        self.backend.save(path / "inner")
        meta = {"kind": self.kind, "inner": type(self.backend).__name__, "inner_backend": name}
        return io.save_state(path, {"scale": np.asarray(self.scale)}, meta)

    @classmethod
    def load(cls, path: str | Path, *, model_cls: type | None = None) -> Recalibrated:
        """Read what :meth:`save` wrote; ``model_cls`` goes to the wrapped backend's ``load``
        (needed for a user's own network class unless it is registered). Files written before
        the registry (the wrapped backend's class name only) are read too."""
        arrays, meta = io.load_state(path, cls.kind)
        name = meta.get("inner_backend", _LEGACY_INNER.get(meta.get("inner")))
        if name == cls.name:
            inner_cls = cls
        elif isinstance(name, str) and name in registry.names():
            inner_cls = registry.backend_class(name)
        else:
            inner = meta.get("inner_backend", meta.get("inner"))
            raise ValueError(f"{str(path)!r}: wrapped backend {inner!r} is not a uqmcmc backend")
        return cls(
            inner_cls.load(Path(path) / "inner", model_cls=model_cls), float(arrays["scale"])
        )


def _registry_name(backend: Any) -> str | None:
    """The name :meth:`Recalibrated.load` finds ``backend``'s class under, or ``None``."""
    if isinstance(backend, Recalibrated):
        return Recalibrated.name
    name = getattr(type(backend), "name", None)
    if not isinstance(backend, UQBackend) or name not in registry.names():
        return None
    return name if registry.backend_class(name) is type(backend) else None


def recalibrate(backend: Any, x: Array, y: Array) -> Recalibrated:
    """Fit a variance scale on held-out data ``(x, y)`` and wrap ``backend`` with it.

    Sigma scaling (Levi et al. 2019; Laves et al. 2020): the one multiplier ``s^2`` of the
    predictive variance that minimises the Gaussian NLL on the held-out set, ``s^2 = mean(z^2)``
    with ``z`` the z-scores. Use data the backend was not trained on.

    Returns
    -------
    Recalibrated
        Same protocol (``predict_mean_var``, ``predict_draws``, ``save``, ``load``).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> class Narrow:  # predicts N(0, 0.25) but the labels have variance 1
    ...     def predict_mean_var(self, x):
    ...         return jnp.zeros(x.shape[0]), jnp.full(x.shape[0], 0.25)
    ...     def predict_draws(self, key, x, n):
    ...         return 0.5 * jax.random.normal(key, (n, 1)) * jnp.ones(x.shape[0])
    >>> y = jax.random.normal(jax.random.key(0), (5000,))
    >>> fixed = recalibrate(Narrow(), jnp.zeros((5000, 1)), y)
    >>> round(fixed.scale)
    4
    >>> round(metrics(fixed, jnp.zeros((5000, 1)), y)["coverage_90"], 2)
    0.9
    """
    mean, var = backend.predict_mean_var(x)
    if np.shape(y) != np.shape(mean):
        raise ValueError(f"y must have the prediction's shape {np.shape(mean)}, got {np.shape(y)}")
    return Recalibrated(backend, sigma_scale(mean, var, y))
