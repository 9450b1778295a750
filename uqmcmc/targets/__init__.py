"""Physical targets: exact action, gradient and observables.

A target is anything with ``action(x)`` and ``grad(x)`` (see :class:`Target`). A target class
may also say what a comparison of its chains should look at: ``derived_quantities`` (name ->
:class:`Derived`), ``compared_observables`` and ``distribution_observables``. Runs record the
target's name in their attrs (``attrs["target"]``), and :func:`traits` turns attrs back into
those three, so the diagnostics need no target object and know no target of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from uqmcmc.targets.analytic import DoubleWell, Gaussian
from uqmcmc.targets.base import (
    Derived,
    Target,
    check_target,
    default_observables,
    logdensity_fn,
)
from uqmcmc.targets.lj import LJCluster, heat_capacity
from uqmcmc.targets.loading import BUILTIN_TARGETS, load_target, parse_params
from uqmcmc.targets.phi4 import Phi4, binder, correlation_length, susceptibility
from uqmcmc.targets.tempered import Tempered

__all__ = [
    "Target",
    "Derived",
    "Phi4",
    "Gaussian",
    "DoubleWell",
    "LJCluster",
    "Tempered",
    "TARGETS",
    "BUILTIN_TARGETS",
    "load_target",
    "parse_params",
    "Traits",
    "traits",
    "check_target",
    "default_observables",
    "logdensity_fn",
    "susceptibility",
    "binder",
    "correlation_length",
    "heat_capacity",
]

#: Built-in target classes by the name their runs record in ``attrs["target"]``.
TARGETS: dict[str, type] = {
    "Phi4": Phi4,
    "Gaussian": Gaussian,
    "DoubleWell": DoubleWell,
    "LJCluster": LJCluster,
}


class Traits(NamedTuple):
    """What a target class tells the diagnostics (empty for an unknown target): its derived
    quantities, the observables compared by default and those whose distribution is tested.

    Examples
    --------
    >>> traits({"target": "Phi4"}).distributions
    ('abs_m', 'action_density')
    """

    derived: dict[str, Derived]
    compared: tuple[str, ...]
    distributions: tuple[str, ...]


def traits(attrs: Mapping[str, Any] | None) -> Traits:
    """The :class:`Traits` of the target named in a run's attrs.

    Examples
    --------
    >>> sorted(traits({"target": "Phi4", "L": 8}).derived)
    ['binder', 'chi_abs', 'xi']
    >>> traits({"target": "MySystem"})
    Traits(derived={}, compared=(), distributions=())
    """
    cls = TARGETS.get(str((attrs or {}).get("target")))
    return Traits(
        dict(getattr(cls, "derived_quantities", {}) or {}),
        tuple(getattr(cls, "compared_observables", ()) or ()),
        tuple(getattr(cls, "distribution_observables", ()) or ()),
    )
