"""The target protocol: what the rest of uqmcmc needs from a physical system."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

Array = jax.Array


@runtime_checkable
class Target(Protocol):
    """Anything with an action (negative log-density) and its gradient.

    A target is duck-typed: a user's own object with these two methods works everywhere a
    built-in target does, with no base class to inherit. Both methods take ONE configuration
    (any array shape) and return a scalar and an array of the same shape; uqmcmc batches with
    ``jax.vmap``. A target may also define ``observables(x) -> dict[str, Array]`` for one
    configuration, which the chain driver records per draw.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Harmonic:
    ...     def action(self, x):
    ...         return 0.5 * jnp.sum(x**2)
    ...     def grad(self, x):
    ...         return x
    >>> isinstance(Harmonic(), Target)
    True
    """

    def action(self, x: Array) -> Array: ...

    def grad(self, x: Array) -> Array: ...


class Derived(NamedTuple):
    """A function of several posterior means (a derived quantity such as a susceptibility),
    estimated with a block jackknife by :func:`uqmcmc.diagnostics.estimate`.

    ``make(attrs)`` returns the function of the means of ``inputs``; ``attrs`` are the run's
    attrs (e.g. ``L``), so a derived quantity is computed from a saved run alone. A target
    lists its own in a ``derived_quantities`` mapping (see :class:`~uqmcmc.targets.Phi4`).

    Examples
    --------
    >>> kurtosis = Derived(("m4", "m2"), lambda attrs: lambda m4, m2: m4 / m2**2)
    >>> kurtosis.make({})(3.0, 1.0)
    3.0
    """

    inputs: tuple[str, ...]
    make: Callable[[Mapping[str, Any]], Callable[..., float]]


def logdensity_fn(target: Any):
    """Return ``x -> -target.action(x)``, the log-density BlackJAX expects.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> float(logdensity_fn(Gaussian(jnp.zeros(2), jnp.eye(2)))(jnp.zeros(2)))
    -0.0
    """
    return lambda x: -target.action(x)


def default_observables(target: Any):
    """The per-draw observables of ``target``: its ``observables`` method, else the position.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Gaussian
    >>> sorted(default_observables(Gaussian(jnp.zeros(2), jnp.eye(2)))(jnp.ones(2)))
    ['x']
    """
    obs = getattr(target, "observables", None)
    if callable(obs):
        return obs
    return lambda x: {"x": x}


def check_target(target: Any) -> None:
    """Raise ``TypeError`` if ``target`` lacks a callable ``action`` or ``grad``.

    Examples
    --------
    >>> from uqmcmc.targets import Phi4
    >>> check_target(Phi4(L=4, beta=0.5, g=1.0))  # a valid target passes silently
    >>> check_target(object())
    Traceback (most recent call last):
        ...
    TypeError: target object has no callable `action`: a target needs ...
    """
    for name in ("action", "grad"):
        if not callable(getattr(target, name, None)):
            raise TypeError(
                f"target {type(target).__name__} has no callable `{name}`: a target needs "
                "`action(x)` and `grad(x)` (see uqmcmc.targets.Target)"
            )


def check_finite_array(name: str, value: Any) -> Array:
    """Convert ``value`` to a float array and raise ``ValueError`` if any entry is not finite.

    Examples
    --------
    >>> check_finite_array("mean", [1, 2]).dtype
    dtype('float32')
    >>> check_finite_array("mean", [1.0, float("nan")])
    Traceback (most recent call last):
        ...
    ValueError: mean must be finite, got [1.0, nan]
    """
    arr = jnp.asarray(value, dtype=float)
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr
