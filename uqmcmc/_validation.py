"""Argument checks shared across uqmcmc: one clear ``ValueError`` naming the argument."""

from __future__ import annotations

import math
from typing import Any

import jax


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (e.g. a step size being tuned inside ``jit``)."""
    return isinstance(value, jax.core.Tracer)


def positive(name: str, value: Any) -> Any:
    """Check that ``value`` is a finite number ``> 0`` (tracers pass unchecked)."""
    if is_traced(value):
        return value
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Check that ``value`` is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def probability(name: str, value: Any) -> float:
    """Check that ``value`` lies strictly between 0 and 1."""
    try:
        ok = 0.0 < float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)
