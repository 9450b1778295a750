"""Argument checks shared across uqmcmc: one clear ``ValueError`` naming the argument.

Settings of the workflows raise :class:`SettingError`, a ``ValueError`` that also knows which
settings it is about, so the command line can name them the way the user wrote them
(``--steps`` on the command line, ``steps (in run.toml)`` in a settings file).
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

#: The largest seed a JAX key takes (a signed 64-bit integer).
MAX_SEED = 2**63 - 1


def SettingError(template: str, *names: Any) -> ValueError:  # noqa: N802 (raised like a class)
    """A ``ValueError`` about settings, its message built from a template.

    ``template`` holds ``{0}``, ``{1}``, ... for ``names``; ``str(err)`` names the settings as
    given, :func:`in_words` as the user wrote them. A plain ``ValueError`` (so tracebacks and
    ``except ValueError`` stay as they were) carrying the template and the names.

    Examples
    --------
    >>> err = SettingError("{0} ({1}) must be at least {2}", "steps", 3, "thin")
    >>> isinstance(err, ValueError), str(err)
    (True, 'steps (3) must be at least thin')
    >>> in_words(err, {"steps": "--steps", "thin": "thin (in run.toml)"})
    '--steps (3) must be at least thin (in run.toml)'
    """
    err = ValueError(template.format(*names))
    err.setting_template, err.setting_names = template, names
    return err


def in_words(err: BaseException, words: Mapping[str, str]) -> str:
    """The message of ``err`` with every setting named as ``words[name]`` (where given).

    Errors not made by :func:`SettingError` keep their message, except that one starting with
    a setting's name followed by a space gets that name replaced.

    Examples
    --------
    >>> in_words(ValueError("L must be an integer >= 2, got 1"), {"L": "--L"})
    '--L must be an integer >= 2, got 1'
    """
    template = getattr(err, "setting_template", None)
    if template is not None:
        return template.format(
            *(words.get(n, n) if isinstance(n, str) else n for n in err.setting_names)
        )
    text = str(err)
    head, sep, rest = text.partition(" ")
    if sep and head in words:
        return f"{words[head]} {rest}"
    return text


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (e.g. a step size being tuned inside ``jit``).

    Examples
    --------
    >>> is_traced(1.0)
    False
    """
    return isinstance(value, jax.core.Tracer)


def _is_number(value: Any) -> bool:
    """A real number: not a bool, a string or bytes (``"0.1"`` and ``True`` are refused)."""
    if isinstance(value, bool | np.bool_ | str | bytes):
        return False
    if isinstance(value, numbers.Real):
        return True
    array = isinstance(value, np.ndarray | jax.Array)
    return array and value.ndim == 0 and value.dtype.kind in "iuf"


def positive(name: str, value: Any) -> Any:
    """Check that ``value`` is a finite number ``> 0`` (tracers pass unchecked).

    Examples
    --------
    >>> positive("step_size", 0.1)
    0.1
    >>> positive("step_size", "0.1")
    Traceback (most recent call last):
        ...
    ValueError: step_size must be a finite number > 0, got '0.1'
    """
    if is_traced(value):
        return value
    ok = _is_number(value) and math.isfinite(float(value)) and float(value) > 0
    if not ok:
        raise SettingError("{0} must be a finite number > 0, got {1!r}", name, value)
    return value


def real(name: str, value: Any) -> float:
    """Check that ``value`` is a finite real number (not a bool or a string).

    Examples
    --------
    >>> real("beta", 0.7)
    0.7
    >>> real("beta", True)
    Traceback (most recent call last):
        ...
    ValueError: beta must be a finite number, got True
    """
    if not (_is_number(value) and math.isfinite(float(value))):
        raise SettingError("{0} must be a finite number, got {1!r}", name, value)
    return float(value)


def positive_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """Check that ``value`` is an integer ``>= minimum`` (and ``<= maximum`` when given).

    Examples
    --------
    >>> positive_int("steps", 10), positive_int("steps", 10.0)
    (10, 10)
    >>> positive_int("steps", float("inf"))
    Traceback (most recent call last):
        ...
    ValueError: steps must be an integer >= 1, got inf
    """
    ok = _is_number(value) and math.isfinite(float(value)) and int(value) == value
    if ok and maximum is not None and value > maximum:
        raise SettingError(
            "{0} must be an integer between {1} and {2}, got {3!r}", name, minimum, maximum, value
        )
    if not ok or value < minimum:
        raise SettingError("{0} must be an integer >= {1}, got {2!r}", name, minimum, value)
    return int(value)


def probability(name: str, value: Any) -> float:
    """Check that ``value`` lies strictly between 0 and 1.

    Examples
    --------
    >>> probability("p", 0.5)
    0.5
    """
    ok = _is_number(value) and 0.0 < float(value) < 1.0
    if not ok:
        raise SettingError("{0} must lie strictly between 0 and 1, got {1!r}", name, value)
    return float(value)


def flag(name: str, value: Any) -> bool:
    """Check that ``value`` is ``True`` or ``False``.

    Examples
    --------
    >>> flag("quick", "yes")
    Traceback (most recent call last):
        ...
    ValueError: quick must be true or false, got 'yes'
    """
    if not isinstance(value, bool | np.bool_):
        raise SettingError("{0} must be true or false, got {1!r}", name, value)
    return bool(value)


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """Check that ``value`` is one of ``options``.

    Examples
    --------
    >>> choice("rule", "simpsons", ("simpson", "trapezoid"))
    Traceback (most recent call last):
        ...
    ValueError: rule must be one of ['simpson', 'trapezoid'], got 'simpsons'
    """
    options = list(options)
    if not isinstance(value, str) or value not in options:
        raise SettingError("{0} must be one of {1}, got {2!r}", name, options, value)
    return value


def names(name: str, value: Any, known: Iterable[str]) -> tuple[str, ...]:
    """Check a list of names: a list or tuple (not one string), non-empty, each known, once.

    Examples
    --------
    >>> names("backends", ["ensemble"], ("ensemble", "bnn"))
    ('ensemble',)
    >>> names("backends", "ensemble", ("ensemble", "bnn"))
    Traceback (most recent call last):
        ...
    ValueError: backends must be a list of names, not one string: ...
    """
    known = tuple(known)
    if isinstance(value, str):
        raise SettingError(
            "{0} must be a list of names, not one string: write [{1!r}] (or a comma-separated "
            "list on the command line)",
            name,
            value,
        )
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise SettingError("{0} must be a list of names from {1}, got {2!r}", name, known, value)
    bad = [v for v in value if v not in known]
    if bad or not value:
        raise SettingError("{0} must be a non-empty subset of {1}, got {2}", name, known, bad)
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise SettingError("{0} lists {1} more than once", name, twice)
    return tuple(value)


def positive_floats(name: str, value: Any) -> tuple[float, ...]:
    """Check a list (or tuple) of finite numbers ``> 0``; may be empty.

    Examples
    --------
    >>> positive_floats("noise_sweep", [0.5, 1])
    (0.5, 1.0)
    >>> positive_floats("noise_sweep", [0.5, -1])
    Traceback (most recent call last):
        ...
    ValueError: noise_sweep must be a list of finite numbers > 0, ...
    """
    if not isinstance(value, list | tuple) or not all(
        _is_number(v) and math.isfinite(float(v)) and float(v) > 0 for v in value
    ):
        raise SettingError("{0} must be a list of finite numbers > 0, got {1!r}", name, value)
    return tuple(float(v) for v in value)


def path_setting(name: str, value: Any) -> Path:
    """Check that ``value`` is a path (a string or ``os.PathLike``), not empty.

    Examples
    --------
    >>> path_setting("out", 5)
    Traceback (most recent call last):
        ...
    ValueError: out must be a folder name (a string), got 5
    """
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise SettingError("{0} must be a folder name (a string), got {1!r}", name, value)
    return Path(value)


def writable_folder(name: str, value: Any) -> Path:
    """Check that the folder ``value`` can be written, before any work: it is a folder (or
    absent) and a folder can be created beside it (where a report is assembled first).

    Probes by creating and removing an empty folder in the nearest existing ancestor.

    Examples
    --------
    >>> import tempfile
    >>> writable_folder("out", tempfile.mkdtemp()).is_dir()
    True
    >>> writable_folder("out", "/proc/x/y")
    Traceback (most recent call last):
        ...
    ValueError: out '/proc/x/y' cannot be written: ...
    """
    path = path_setting(name, value)
    if path.exists() and not path.is_dir():
        raise SettingError("{0} {1!r} exists and is not a folder", name, str(path))
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(f"{str(parent)!r} is not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".uqmcmc-probe-", dir=parent))
    except OSError as err:
        reason = err.strerror or str(err)
        raise SettingError(
            "{0} {1!r} cannot be written: {2} ({3})", name, str(path), reason, str(parent)
        ) from None
    return path
