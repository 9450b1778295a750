"""Targets named on a command line or in a TOML file: a built-in name or a user's own class.

``load_target("lj", {"temperature": 0.5})`` builds a built-in target; ``load_target(
"mypackage.energies:Dimer", {...})`` imports ``mypackage.energies`` (the working directory is
searched first, as ``python -m`` does) and calls ``Dimer(**params)``; ``"path/to/file.py:Dimer"``
loads a file that is not on the import path. The object found may be a class, a function
returning a target, or a target instance (then it takes no parameters). Every mistake (no such
module, no such name, a parameter the class does not take, an object without ``action`` and
``grad``) is a ``ValueError`` naming what to fix, raised before any sampling.
``parse_params(["T=0.5", "N=13"])`` reads ``--param key=value`` options with TOML's value
syntax.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uqmcmc.targets.base import check_target
from uqmcmc.targets.lj import LJCluster
from uqmcmc.targets.phi4 import Phi4

__all__ = ["BUILTIN_TARGETS", "load_target", "parse_params"]

#: The targets a command line may name without a module path.
BUILTIN_TARGETS: dict[str, type] = {"phi4": Phi4, "lj": LJCluster}


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings as a dict, each value read as a TOML value (``0.5``, ``13``,
    ``true``, ``[1, 2]``, ``"text"``); a value that is not TOML stays a string.

    Examples
    --------
    >>> parse_params(["temperature=0.5", "N=13", "name=dimer", "sizes=[1, 2]"])
    {'temperature': 0.5, 'N': 13, 'name': 'dimer', 'sizes': [1, 2]}
    >>> parse_params(["temperature"])
    Traceback (most recent call last):
    ...
    ValueError: --param expects key=value, got 'temperature'
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--param expects key=value, got {item!r}")
        if key in params:
            raise ValueError(f"--param {key} is given twice")
        try:
            params[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            params[key] = value.strip()
    return params


def _import(module: str) -> Any:
    """Import ``module`` (a dotted name, or a ``.py`` file), the working directory first."""
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise ValueError(f"target file {module!r} does not exist")
        spec = importlib.util.spec_from_file_location(f"_uqmcmc_target_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):
            raise ValueError(
                f"target module {module!r} cannot be imported: no module {err.name!r} in the "
                "working directory or on the Python path (or give a file: path/to/file.py:Name)"
            ) from None
        raise


def load_target(spec: str | Any, params: Mapping[str, Any] | None = None) -> Any:
    """The target named by ``spec``, built with ``params``.

    Parameters
    ----------
    spec
        A built-in name (:data:`BUILTIN_TARGETS`: ``"phi4"``, ``"lj"``), ``"module:Name"``
        (a dotted module importable from the working directory or the Python path) or
        ``"path/to/file.py:Name"``; ``Name`` may be a class, a function returning a target, or
        a target. An object with ``action`` and ``grad`` is returned as it is.
    params
        Keyword arguments of the class or function (none for a target instance).

    Returns
    -------
    The target: anything with callable ``action`` and ``grad`` (see
    :class:`~uqmcmc.targets.Target`).

    Examples
    --------
    >>> load_target("lj", {"N": 7, "temperature": 0.4})
    LJCluster(N=7, d=3, temperature=0.4, wall_radius=1.78, wall_strength=25.0)
    >>> gauss = load_target("uqmcmc.targets:Gaussian", {"mean": [0, 1], "cov": [[1, 0], [0, 1]]})
    >>> type(gauss).__name__, gauss.shape
    ('Gaussian', (2,))
    >>> load_target("lj", {"temp": 0.4})
    Traceback (most recent call last):
    ...
    ValueError: target 'lj' (LJCluster) does not take parameter 'temp'; it takes N, d, ...
    """
    params = dict(params or {})
    if callable(getattr(spec, "action", None)):
        if params:
            raise ValueError("parameters cannot be passed to a target object, only to a class")
        check_target(spec)
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"target must be a name or 'module:Name', got {spec!r}")
    spec = spec.strip()
    if spec in BUILTIN_TARGETS:
        obj = BUILTIN_TARGETS[spec]
    elif ":" in spec:
        module, _, name = spec.rpartition(":")
        mod = _import(module)
        if not hasattr(mod, name):
            raise ValueError(f"target {spec!r}: module {module!r} has no {name!r}")
        obj = getattr(mod, name)
    else:
        raise ValueError(
            f"unknown target {spec!r}: use one of {sorted(BUILTIN_TARGETS)} or "
            "'module:Name' (a class in an importable module) or 'file.py:Name'"
        )
    target = _build(spec, obj, params)
    try:
        check_target(target)
    except TypeError as err:
        raise ValueError(f"target {spec!r}: {err}") from None
    return target


def _build(spec: str, obj: Any, params: dict[str, Any]) -> Any:
    """``obj(**params)`` for a class or function, ``obj`` itself for a target instance, with the
    parameters checked against the signature first."""
    if not callable(obj) or callable(getattr(obj, "action", None)) and not inspect.isclass(obj):
        if params:
            raise ValueError(f"target {spec!r} is an object, not a class: it takes no parameters")
        return obj
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return obj(**params)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    names = [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                                p.KEYWORD_ONLY)]  # fmt: skip
    label = f"{spec!r}" + (f" ({obj.__name__})" if spec in BUILTIN_TARGETS else "")
    for key in params:
        if key not in names and not takes_any:
            raise ValueError(
                f"target {label} does not take parameter {key!r}; it takes {', '.join(names)}"
            )
    try:
        sig.bind(**params)
    except TypeError as err:
        raise ValueError(f"target {label}: {err} (pass them with --param key=value)") from None
    try:
        return obj(**params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"target {label}: {err}") from None
