"""Reading runs: ArviZ data as plain arrays, their scalar series, and run-level statistics.

Every run is ArviZ data read through :mod:`uqmcmc._arviz` (so ArviZ 0.x and 1.x both work):
``posterior`` holds the observables per draw, ``sample_stats`` the kernel's statistics and the
attrs the target's parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from uqmcmc import _arviz
from uqmcmc.targets.base import Derived

__all__ = [
    "COUNTED_FLAGS",
    "available",
    "check_runs",
    "component",
    "is_idata",
    "posterior_arrays",
    "run_stats",
    "sample_stats_arrays",
]

#: Largest trailing size of a vector observable that is split into components by default.
MAX_COMPONENTS = 16

#: Per-step flags of the noise-aware kernels (uqmcmc.mcmc), counted over a run.
COUNTED_FLAGS = ("nonfinite", "out_of_range")


def is_idata(obj: Any) -> bool:
    """Whether ``obj`` is ArviZ data with a ``posterior`` group (either ArviZ line).

    Examples
    --------
    >>> import numpy as np
    >>> is_idata(_arviz.make_idata({"x": np.zeros((2, 3))})), is_idata({"x": 1})
    (True, False)
    """
    try:
        return _arviz.has_group(obj, "posterior")
    except (AttributeError, TypeError):
        return False


def posterior_arrays(idata) -> dict[str, np.ndarray]:
    """The ``posterior`` group as a dict of numpy arrays ``(chain, draw, ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> posterior_arrays(_arviz.make_idata({"x": np.zeros((2, 3))}))["x"].shape
    (2, 3)
    """
    post = _arviz.group(idata, "posterior")
    return {str(k): np.asarray(v) for k, v in post.data_vars.items()}


def sample_stats_arrays(idata) -> dict[str, np.ndarray]:
    """The ``sample_stats`` group as a dict of numpy arrays (empty if the run has none).

    Examples
    --------
    >>> import numpy as np
    >>> idata = _arviz.make_idata({"x": np.zeros((2, 3))}, {"lp": np.ones((2, 3))})
    >>> bare = _arviz.make_idata({"x": np.zeros((2, 3))})
    >>> list(sample_stats_arrays(idata)), sample_stats_arrays(bare)
    (['lp'], {})
    """
    if not _arviz.has_group(idata, "sample_stats"):
        return {}
    ss = _arviz.group(idata, "sample_stats")
    return {str(k): np.asarray(v) for k, v in ss.data_vars.items()}


def component(posterior: Mapping[str, np.ndarray], name: str) -> np.ndarray | None:
    """The ``(chain, draw)`` series called ``name``: a variable or a component ``G[1]``.

    Examples
    --------
    >>> import numpy as np
    >>> post = {"m": np.zeros((2, 5)), "G": np.ones((2, 5, 3))}
    >>> component(post, "G[1]").shape, component(post, "G") is None, component(post, "G[7]")
    ((2, 5), True, None)
    """
    if name in posterior:
        x = posterior[name]
        return x if x.ndim == 2 else None
    if name.endswith("]") and "[" in name:
        base, _, idx = name[:-1].partition("[")
        x = posterior.get(base)
        if x is not None and x.ndim == 3 and idx.isdigit() and int(idx) < x.shape[2]:
            return x[:, :, int(idx)]
    return None


def available(
    posterior: Mapping[str, np.ndarray], derived: Mapping[str, Derived] | None = None
) -> list[str]:
    """Every scalar series of a posterior, vectors split into components, and the
    ``derived`` quantities whose inputs it has.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc.targets import traits
    >>> post = {"abs_m": np.zeros((2, 5)), "m2": np.zeros((2, 5)), "G": np.ones((2, 5, 2))}
    >>> available(post, traits({"target": "Phi4"}).derived)
    ['abs_m', 'm2', 'G[0]', 'G[1]', 'chi_abs']
    """
    names = []
    for name, x in posterior.items():
        if name == "position":
            continue
        if x.ndim == 2:
            names.append(name)
        elif x.ndim == 3 and x.shape[2] <= MAX_COMPONENTS:
            names.extend(f"{name}[{i}]" for i in range(x.shape[2]))
    derived = derived or {}
    names.extend(d for d, spec in derived.items() if all(i in posterior for i in spec.inputs))
    return names


def check_runs(runs) -> None:
    """Raise ``ValueError`` unless ``runs`` is a non-empty mapping name -> ArviZ data.

    Examples
    --------
    >>> check_runs({"a": _arviz.make_idata({"x": np.zeros((2, 3))})})  # passes silently
    >>> check_runs({})
    Traceback (most recent call last):
        ...
    ValueError: runs must contain at least one run
    """
    if not isinstance(runs, Mapping) or is_idata(runs):
        raise ValueError("runs must be a mapping run name -> ArviZ data")
    if not runs:
        raise ValueError("runs must contain at least one run")
    for name, idata in runs.items():
        if not is_idata(idata):
            raise ValueError(f"runs[{name!r}] is not ArviZ data with a posterior group")


def run_stats(idata) -> dict[str, float]:
    """Summaries of a run's ``sample_stats``: acceptance, penalty, ΔŜ variance, non-finite count.

    Returns
    -------
    dict with whichever of these the run records: ``acceptance_rate`` and ``is_accepted``
    (means), ``penalty_mean``, ``penalty_max`` (over steps with a finite penalty),
    ``delta_var_mean``, ``delta_sd_median`` (the typical σ of ΔŜ), and the counts of rejected
    steps ``nonfinite`` (non-finite prediction) and ``out_of_range`` (estimated-variance
    penalty outside its valid range). The driver tallies these over EVERY sampling step (each
    kept draw holds the count over the ``thin`` steps before it,
    :data:`uqmcmc.mcmc.sampling_loop.TALLIES`), so the counts and ``penalty_max`` cover the
    whole run, not only the kept draws.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> idata = make_idata({"m": np.zeros((2, 4))},
    ...                    {"acceptance_rate": np.full((2, 4), 0.5), "penalty": np.ones((2, 4))})
    >>> run_stats(idata)
    {'acceptance_rate': 0.5, 'penalty_mean': 1.0, 'penalty_max': 1.0}
    """
    ss = sample_stats_arrays(idata)
    out: dict[str, float] = {}
    for name in ("acceptance_rate", "is_accepted"):
        if name in ss:
            out[name] = float(np.nanmean(ss[name]))
    if "penalty" in ss:
        finite = ss["penalty"][np.isfinite(ss["penalty"])]  # inf marks an out-of-range step
        out["penalty_mean"] = float(finite.mean()) if finite.size else float("nan")
        # the maximum over every step when the driver tallied it, else over the kept steps
        tally = ss.get("penalty_max")
        finite_max = tally[np.isfinite(tally)] if tally is not None else finite
        out["penalty_max"] = float(finite_max.max()) if finite_max.size else float("nan")
    if "delta_var" in ss:
        var = ss["delta_var"]
        out["delta_var_mean"] = float(np.nanmean(var))
        out["delta_sd_median"] = float(np.sqrt(np.nanmedian(var)))
    for name in COUNTED_FLAGS:
        if name in ss:
            out[name] = int(np.sum(ss[name]))
    return out
