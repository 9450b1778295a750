"""Estimates of one observable with its error: plain means (ESS-aware MCSE from ArviZ) and
derived quantities (functions of several means, block jackknife), and reference values.

Derived quantities come from the run's target (:func:`uqmcmc.targets.traits` of its attrs), so
they are computed from the posterior arrays and the attrs alone — no target object needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from uqmcmc import _arviz
from uqmcmc.diagnostics.runs import component, is_idata, posterior_arrays
from uqmcmc.stats import jackknife
from uqmcmc.targets import traits

__all__ = ["estimate", "estimate_from", "reference_values"]


def estimate(idata, name: str) -> dict[str, float]:
    """Estimate of one observable of a run, with its error.

    Parameters
    ----------
    idata
        ArviZ data with a ``posterior`` group.
    name
        A scalar posterior variable, a vector component such as ``"G[1]"``, or a derived quantity
        of the run's target (``chi_abs``, ``binder``, ``xi`` for φ⁴:
        :func:`uqmcmc.targets.traits` of the run's attrs).

    Returns
    -------
    dict with ``mean``, ``mcse`` (ArviZ ESS-aware MCSE, or the jackknife error of a derived
    quantity), ``sd``, ``ess_bulk``, ``ess_tail``, ``r_hat`` (``nan`` for derived quantities) and
    ``method`` (``"mcse"`` or ``"jackknife"``).

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> m = rng.normal(size=(4, 500))
    >>> attrs = {"target": "Phi4", "L": 4}
    >>> idata = make_idata({"abs_m": abs(m), "m2": m**2, "m4": m**4}, attrs=attrs)
    >>> abs(estimate(idata, "binder")["mean"]) < 0.1  # 1 - 3/(3*1) for a Gaussian
    True
    >>> sorted(estimate(idata, "m2"))
    ['ess_bulk', 'ess_tail', 'mcse', 'mean', 'method', 'r_hat', 'sd']
    """
    return estimate_from(posterior_arrays(idata), _arviz.attrs(idata), name)


def estimate_from(posterior, attrs, name: str) -> dict[str, Any]:
    """:func:`estimate` from the posterior arrays and attrs of a run.

    Examples
    --------
    >>> import numpy as np
    >>> estimate_from({"x": np.ones((2, 50))}, {}, "x")["mean"]
    1.0
    """
    x = component(posterior, name)
    if x is not None:
        return {**_arviz.summarize(x), "method": "mcse"}
    derived = traits(attrs).derived
    if name in derived:
        spec = derived[name]
        missing = [i for i in spec.inputs if i not in posterior]
        if missing:
            raise ValueError(f"observable {name!r} needs posterior variables {missing}")
        fn = spec.make(attrs)
        est, err = jackknife(fn, [posterior[i] for i in spec.inputs])
        nan = float("nan")
        return {
            "mean": est,
            "sd": nan,
            "mcse": err,
            "ess_bulk": nan,
            "ess_tail": nan,
            "r_hat": nan,
            "method": "jackknife",
        }
    raise ValueError(f"observable {name!r} is not in the posterior nor a derived quantity")


def reference_values(exact, names: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``name -> (value, error)`` from an exact chain or a mapping of known values.

    Examples
    --------
    >>> reference_values({"abs_m": {"mean": 0.5, "err": 0.01}, "sd": 1.0}, ["abs_m", "sd"])
    {'abs_m': (0.5, 0.01), 'sd': (1.0, 0.0)}
    """
    out = {}
    if is_idata(exact):
        post, attrs = posterior_arrays(exact), _arviz.attrs(exact)
        for name in names:
            est = estimate_from(post, attrs, name)
            out[name] = (est["mean"], est["mcse"])
        return out
    if not isinstance(exact, Mapping):
        raise ValueError(
            "exact must be ArviZ data of the exact chain or a mapping observable -> value, "
            f"got {type(exact).__name__}"
        )
    for name in names:
        if name not in exact:
            continue
        value = exact[name]
        if isinstance(value, Mapping):
            out[name] = (float(value["mean"]), float(value.get("err", 0.0)))
        elif isinstance(value, Sequence) and len(value) == 2:
            out[name] = (float(value[0]), float(value[1]))
        else:
            out[name] = (float(value), 0.0)
    return out
