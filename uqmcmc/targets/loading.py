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

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uqmcmc.targets.base import check_target
from uqmcmc.targets.lj import LJCluster
from uqmcmc.targets.phi4 import Phi4

__all__ = ["BUILTIN_TARGETS", "load_target", "parse_params", "source_record"]

#: The targets a command line may name without a module path.
BUILTIN_TARGETS: dict[str, type] = {"phi4": Phi4, "lj": LJCluster}


#: A value ``--param`` keeps as a string when it is not TOML: a bare word or path.
_BARE = re.compile(r"[A-Za-z_][\w.\-/]*")

#: Python spellings read as their TOML values.
_PYTHON = {"True": True, "False": False}


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings as a dict, each value read as a TOML value (``0.5``, ``13``,
    ``true``, ``[1, 2]``, ``"text"``; Python's ``True``/``False`` too); a bare word that is
    not TOML stays a string, anything else is an error.

    Examples
    --------
    >>> parse_params(["temperature=0.5", "N=13", "name=dimer", "sizes=[1, 2]", "flag=False"])
    {'temperature': 0.5, 'N': 13, 'name': 'dimer', 'sizes': [1, 2], 'flag': False}
    >>> parse_params(["temperature"])
    Traceback (most recent call last):
    ...
    ValueError: --param expects key=value, got 'temperature'
    >>> parse_params(["temperature=.5"])
    Traceback (most recent call last):
    ...
    ValueError: --param temperature=.5: '.5' is not a TOML value (write 0.5, true, "text", [1, 2])
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--param expects key=value, got {item!r}")
        if key in params:
            raise ValueError(f"--param {key} is given twice")
        if value in _PYTHON:
            params[key] = _PYTHON[value]
            continue
        try:
            params[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            if not _BARE.fullmatch(value) or value == "None":
                raise ValueError(
                    f"--param {key}={value}: {value!r} is not a TOML value (write 0.5, true, "
                    '"text", [1, 2])'
                ) from None
            params[key] = value
    return params


@contextlib.contextmanager
def _on_path(folder: str):
    """``folder`` first on ``sys.path`` for the duration of an import only."""
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _import(module: str) -> Any:
    """Import ``module`` (a dotted name, or a ``.py`` file), the working directory first."""
    if module.endswith(".py"):
        path = Path(module).resolve()
        if not path.is_file():
            raise ValueError(f"target file {module!r} does not exist")
        name = f"_uqmcmc_target_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses and pickling look their module up here
        try:
            with _on_path(str(path.parent)):  # so that it imports the modules beside it
                spec.loader.exec_module(mod)
        except Exception as err:
            sys.modules.pop(name, None)
            raise ValueError(f"target file {module!r} fails to import: {err!r}") from err
        return mod
    try:
        with _on_path(str(Path.cwd())):
            return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(err.name + ".")):
            raise ValueError(
                f"target module {module!r} cannot be imported: no module {err.name!r} in the "
                "working directory or on the Python path (or give a file: path/to/file.py:Name)"
            ) from None
        raise ValueError(f"target module {module!r} fails to import: {err!r}") from err
    except Exception as err:
        raise ValueError(f"target module {module!r} fails to import: {err!r}") from err


def load_target(spec: str | Any, params: Mapping[str, Any] | None = None) -> Any:
    """The target named by ``spec``, built with ``params``.

    Parameters
    ----------
    spec
        A built-in name (:data:`BUILTIN_TARGETS`: ``"phi4"``, ``"lj"``), a class name in
        :data:`uqmcmc.targets.TARGETS` (``"Gaussian"``, or a user's class added there),
        ``"module:Name"`` (a dotted module importable from the working directory or the Python
        path) or ``"path/to/file.py:Name"``; ``Name`` may be a class, a function returning a
        target, or a target. A target object is returned as it is, a class is called with
        ``params``.
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
    if inspect.isclass(spec):
        return _build(spec.__name__, spec, params)
    if callable(getattr(spec, "action", None)):
        if params:
            raise ValueError("parameters cannot be passed to a target object, only to a class")
        check_target(spec)
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"target must be a name or 'module:Name', got {spec!r}")
    spec = spec.strip()
    from uqmcmc.targets import TARGETS  # the registry the diagnostics read (users add to it)

    if spec in BUILTIN_TARGETS:
        obj = BUILTIN_TARGETS[spec]
    elif spec in TARGETS:
        obj = TARGETS[spec]
    elif ":" in spec:
        module, _, name = spec.rpartition(":")
        mod = _import(module)
        if not hasattr(mod, name):
            raise ValueError(f"target {spec!r}: module {module!r} has no {name!r}")
        obj = getattr(mod, name)
    else:
        raise ValueError(
            f"unknown target {spec!r}: use one of {sorted(BUILTIN_TARGETS)}, a class of "
            f"uqmcmc.targets.TARGETS ({', '.join(sorted(TARGETS))}), "
            "'module:Name' (a class in an importable module) or 'file.py:Name'"
        )
    target = _build(spec, obj, params)
    try:
        check_target(target)
    except TypeError as err:
        raise ValueError(f"target {spec!r}: {err}") from None
    return target


def source_record(spec: Any) -> dict[str, str]:
    """The file that defines a user's target named by ``spec`` (``"module:Name"`` or
    ``"path/file.py:Name"``) and the SHA-256 of its bytes, as ``{"target_source": {"file":
    name, "sha256": hex}}``; empty for a built-in target, a target object, or a module whose
    file cannot be found. A resumed run compares it with the file's hash now
    (:func:`uqmcmc.workflows.resume.confirm_own_code`): the file itself, not the modules it
    imports.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "bowl.py"
    >>> _ = path.write_text("class Bowl: ...\\n")
    >>> record = source_record(f"{path}:Bowl")["target_source"]
    >>> record["file"], len(record["sha256"])
    ('bowl.py', 64)
    >>> source_record("phi4")
    {}
    """
    if not isinstance(spec, str) or ":" not in spec:
        return {}
    module = spec.strip().rpartition(":")[0]
    if module.endswith(".py"):
        path = Path(module)
    else:
        try:
            with _on_path(str(Path.cwd())):
                found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return {}
        path = Path(found.origin) if found is not None and found.origin else None
    if path is None or not path.is_file():
        return {}
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"target_source": {"file": path.name, "sha256": digest}}


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
    if inspect.isclass(obj):
        missing = [m for m in ("action", "grad") if not callable(getattr(obj, m, None))]
        if missing:
            raise ValueError(
                f"target {spec!r}: class {obj.__name__} has no callable `{missing[0]}`: a "
                "target needs `action(x)` and `grad(x)` (see uqmcmc.targets.Target)"
            )
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
