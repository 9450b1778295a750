"""A target at another temperature: ``exp(-S / T)``, with the original target's observables.

A known, tunable bias for positive controls: a chain on ``Tempered(target, 1 + delta)`` samples
the wrong distribution by a known amount. Its observables are the ORIGINAL target's, so the
thermometer ``sd = (1/V) sum_x phi_x dS/dphi_x`` (expectation ``T`` under ``exp(-S/T)``, by
integration by parts) is biased by exactly ``delta``.
"""

from __future__ import annotations

import math
from typing import Any

import jax

Array = jax.Array

__all__ = ["Tempered"]


class Tempered:
    """``target`` at temperature ``temperature``: action ``S/T``, gradient ``grad S / T``.

    Everything else (``shape``, ``observables``, ``observable_dims``, ``L`` ...) is the
    wrapped target's; ``local_delta`` (the checkerboard sampler's per-site change) is scaled
    too when the target has it. ``params`` adds ``temperature``; ``attrs["target"]`` stays the
    wrapped target's name so a run is compared with the right observables and derived
    quantities.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> hot = Tempered(Phi4(4, 0.5, 1.0), 2.0)
    >>> x = jnp.full((4, 4), 0.5)
    >>> float(hot.action(x)) == float(Phi4(4, 0.5, 1.0).action(x)) / 2
    True
    >>> hot.params["temperature"], hot.shape
    (2.0, (4, 4))
    """

    def __init__(self, target: Any, temperature: float):
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        self.target = target
        self.temperature = temperature

    def action(self, x: Array) -> Array:
        return self.target.action(x) / self.temperature

    def grad(self, x: Array) -> Array:
        return self.target.grad(x) / self.temperature

    def local_delta(self, phi: Array, proposed: Array) -> Array:
        return self.target.local_delta(phi, proposed) / self.temperature

    @property
    def params(self) -> dict:
        return {**dict(getattr(self.target, "params", {}) or {}), "temperature": self.temperature}

    def __getattr__(self, name: str) -> Any:
        if name in ("target", "temperature"):  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.target, name)

    def __repr__(self) -> str:
        return f"Tempered({self.target!r}, {self.temperature})"
