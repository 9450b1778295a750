"""The one registry of UQ backends: a name -> how to build it and how to fit it.

The five built-in backends (:mod:`uqmcmc.uq.builtin_backends`) are registered under
``"ensemble"``, ``"dropout"``, ``"last_layer"``, ``"bnn"`` and ``"deep_kernel"``, each with
the RCNN surrogate of ``grad S`` (:class:`uqmcmc.nets.RCNN`) and the compare workflow's
training settings (read from :class:`BackendSettings`). A user's own backend (a
:class:`~uqmcmc.uq.base.UQBackend` subclass) joins them

- from Python: ``uqmcmc.uq.registry.register(BackendSpec("mine", build, fit_settings))``;
- or from an installed package, through the entry-point group ``uqmcmc.backends``: each entry
  point loads to a :class:`BackendSpec`, or to a zero-argument callable returning one, e.g.
  in its ``pyproject.toml``::

      [project.entry-points."uqmcmc.backends"]
      mine = "my_package.backends:MINE"

  Entry points are loaded the first time :func:`names` or :func:`get` is called.

Importing this module imports no backend: the builders import theirs when called (NumPyro
only for ``"bnn"``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
import warnings
from pathlib import Path
from typing import Any

import jax

from uqmcmc.uq.backend_spec import BackendSettings, BackendSpec, Network
from uqmcmc.uq.base import UQBackend

Array = jax.Array

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendSettings",
    "BackendSpec",
    "Network",
    "backend_class",
    "build",
    "fit",
    "get",
    "load",
    "names",
    "register",
    "unregister",
]

#: The entry-point group under which installed packages offer backends.
ENTRY_POINT_GROUP = "uqmcmc.backends"


_SPECS: dict[str, BackendSpec] = {}
_LOCK = threading.RLock()
_builtins_loaded = False
_plugins_loaded = False


def _load_builtins() -> None:
    """Add the built-in specs (:mod:`uqmcmc.uq.builtin_backends`) first, once."""
    global _builtins_loaded
    with _LOCK:
        if _builtins_loaded:
            return
        _builtins_loaded = True
        from uqmcmc.uq.builtin_backends import SPECS

        user = dict(_SPECS)
        _SPECS.clear()
        _SPECS.update({spec.name: spec for spec in SPECS})
        _SPECS.update(user)


def register(spec: BackendSpec, *, replace: bool = False) -> BackendSpec:
    """Add ``spec`` under ``spec.name`` (after the ones registered before); returns it.

    A name already taken is an error unless ``replace=True`` (the spec then takes the old
    one's place in :func:`names`).

    Examples
    --------
    A user's backend (a constant level with an uncertain offset), registered, fitted by name,
    saved, loaded by name, and removed again:

    >>> import tempfile
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.uq import io
    >>> class Level(UQBackend):  # f(x) = m + c everywhere, c ~ N(0, s2): one c per draw
    ...     name = "level"
    ...     def fit(self, x, y, *, key, shrink=1.0):
    ...         self.m, self.s2 = shrink * float(jnp.mean(y)), float(jnp.var(y)) / len(y)
    ...         return self
    ...     def predict_mean_var(self, x, *, epistemic_only=False):
    ...         return jnp.full(x.shape, self.m), jnp.full(x.shape, self.s2)
    ...     def predict_draws(self, key, x, n):
    ...         c = jnp.sqrt(self.s2) * jax.random.normal(key, (n,) + (1,) * x.ndim)
    ...         return self.m + c + jnp.zeros_like(x)
    ...     def save(self, path):
    ...         return io.save_state(path, {"m_s2": jnp.array([self.m, self.s2])}, {"kind": "L"})
    ...     @classmethod
    ...     def load(cls, path, *, model_cls=None):
    ...         self = cls()
    ...         self.m, self.s2 = io.load_state(path, "L")[0]["m_s2"].tolist()
    ...         return self
    >>> spec = register(BackendSpec("level", lambda s: Level(), lambda s: {"shrink": 0.5}))
    >>> "level" in names(), get("level") is spec
    (True, True)
    >>> b = fit("level", None, jnp.zeros((4, 2)), jnp.arange(4.0), jax.random.key(0))
    >>> b.m, b.predict_draws(jax.random.key(1), jnp.zeros((3, 2)), 5).shape
    (0.75, (5, 3, 2))
    >>> load("level", b.save(tempfile.mkdtemp())).m
    0.75
    >>> register(spec)
    Traceback (most recent call last):
    ...
    ValueError: a backend named 'level' is already registered (pass replace=True ...)
    >>> unregister("level") is spec, "level" in names()
    (True, False)
    """
    if not isinstance(spec, BackendSpec):
        raise TypeError(f"register expects a BackendSpec, got {type(spec).__name__}")
    _load_builtins()
    with _LOCK:
        if spec.name in _SPECS and not replace:
            raise ValueError(
                f"a backend named {spec.name!r} is already registered (pass replace=True to "
                "replace it)"
            )
        _SPECS[spec.name] = spec
    return spec


def unregister(name: str) -> BackendSpec:
    """Remove backend ``name`` from the registry; returns its spec.

    Examples
    --------
    >>> spec = register(BackendSpec("scratch", build=lambda s: None))
    >>> unregister("scratch") is spec, "scratch" in names()
    (True, False)
    """
    with _LOCK:
        spec = get(name)
        del _SPECS[name]
    return spec


def _load_plugins() -> None:
    """Register the specs of the ``uqmcmc.backends`` entry points, once."""
    global _plugins_loaded
    _load_builtins()
    with _LOCK:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                spec = obj if isinstance(obj, BackendSpec) else obj()
                if not isinstance(spec, BackendSpec):
                    raise TypeError(f"it gave a {type(spec).__name__}, not a BackendSpec")
                register(spec)
            except Exception as err:  # a broken plugin must not take the built-ins down
                warnings.warn(
                    f"uqmcmc backend entry point {ep.name!r} ({ep.value}) not loaded: {err}",
                    RuntimeWarning,
                    stacklevel=3,
                )


def names() -> tuple[str, ...]:
    """Every registered name: the built-ins (``ensemble``, ``dropout``, ``last_layer``,
    ``bnn``, ``deep_kernel``), then the user's, in the order registered.

    Examples
    --------
    >>> names()[:5]
    ('ensemble', 'dropout', 'last_layer', 'bnn', 'deep_kernel')
    """
    _load_plugins()
    return tuple(_SPECS)


def get(name: str) -> BackendSpec:
    """The spec registered as ``name``.

    Examples
    --------
    >>> get("bnn").description
    'NumPyro BNN (mean-field SVI, 50 posterior draws) over a small network'
    >>> get("gp")
    Traceback (most recent call last):
    ...
    ValueError: unknown backend 'gp'; registered: ensemble, dropout, last_layer, bnn, deep_kernel...
    """
    _load_plugins()
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; registered: {', '.join(_SPECS)}") from None


def build(name: str, settings: BackendSettings | None = None) -> UQBackend:
    """An unfitted backend: ``get(name).build(settings)`` (default :class:`BackendSettings`).

    Examples
    --------
    >>> b = build("ensemble", BackendSettings(n_members=3))
    >>> type(b).__name__, b.n_members, b.name
    ('DeepEnsemble', 3, 'ensemble')
    """
    settings = BackendSettings() if settings is None else settings
    backend = get(name).build(settings)
    if not isinstance(backend, UQBackend):
        raise TypeError(
            f"the builder of backend {name!r} returned a {type(backend).__name__}, not a "
            "uqmcmc.uq.base.UQBackend"
        )
    return backend


def fit(
    name: str,
    settings: BackendSettings | None,
    x: Array,
    y: Array,
    key: Array | int,
    **overrides: Any,
) -> UQBackend:
    """Build backend ``name`` and fit it on ``(x, y)`` with its spec's fit settings.

    ``build(name, settings).fit(x, y, key=key, **get(name).fit_settings(settings))``;
    ``overrides`` replace or add fit keyword arguments.

    Examples
    --------
    ``fit("last_layer", BackendSettings(epochs=100), x, y, key)`` trains the workflow's
    Bayesian last layer; here a toy backend whose ``fit`` takes one setting:

    >>> import jax, jax.numpy as jnp
    >>> class Level(UQBackend):  # f(x) = m everywhere, no uncertainty
    ...     name = "level"
    ...     def fit(self, x, y, *, key, shrink=1.0):
    ...         self.m = shrink * float(jnp.mean(y))
    ...         return self
    ...     def predict_mean_var(self, x, *, epistemic_only=False):
    ...         return jnp.full(x.shape, self.m), jnp.zeros(x.shape)
    ...     def predict_draws(self, key, x, n):
    ...         return jnp.full((n, *x.shape), self.m)
    ...     save = load = None  # never saved here
    >>> _ = register(BackendSpec("level", lambda s: Level(), lambda s: {"shrink": 0.5}))
    >>> x, y = jnp.zeros((4, 2)), jnp.arange(4.0)
    >>> fit("level", None, x, y, jax.random.key(0)).m  # with the spec's fit settings
    0.75
    >>> fit("level", None, x, y, jax.random.key(0), shrink=1.0).m  # one of them overridden
    1.5
    >>> _ = unregister("level")
    """
    settings = BackendSettings() if settings is None else settings
    spec = get(name)
    kwargs = {**spec.fit_settings(settings), **overrides}
    return build(name, settings).fit(x, y, key=key, **kwargs)


def backend_class(name: str) -> type[UQBackend]:
    """The class of backend ``name`` (imported on demand).

    Examples
    --------
    >>> backend_class("deep_kernel").__name__
    'DeepKernelRegression'
    """
    spec = get(name)
    cls = spec.backend_cls
    if cls is None:
        return type(build(name))
    return cls if isinstance(cls, type) else cls()


def load(name: str, path: str | Path, *, model_cls: type | None = None) -> UQBackend:
    """Read a backend ``name`` saved at ``path``: ``backend_class(name).load(path, ...)``
    (a round trip is in :func:`register`'s example).

    Examples
    --------
    >>> import tempfile
    >>> load("ensemble", tempfile.mkdtemp())  # DeepEnsemble.load: nothing saved there
    Traceback (most recent call last):
    ...
    FileNotFoundError: ... is missing meta.json: not a saved uqmcmc state
    """
    return backend_class(name).load(path, model_cls=model_cls)
