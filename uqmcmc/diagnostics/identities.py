r"""Exact identities that test a chain without an exact chain: Stein identities.

For a density :math:`p \propto e^{-S}` and a test function :math:`f` that decays fast enough,
integration by parts gives, for every coordinate :math:`i`,

.. math:: \langle f(x)\, \partial_i S(x) \rangle = \langle \partial_i f(x) \rangle .

With :math:`f = x_i^k` this is
:math:`\langle x_i^k \partial_i S\rangle = k \langle x_i^{k-1}\rangle`: ``grad`` (k = 0,
``<dS/dx_i> = 0``), ``x_grad`` (k = 1, ``<x_i dS/dx_i> = 1``, for φ⁴ the Schwinger–Dyson term
``sd``), ``x2_grad`` (``= 2<x_i>``) and ``x3_grad`` (``= 3<x_i^2>``). With the neighbouring
coordinates :math:`f = \bar x_{\mathrm{nn}(i)}` (``nbr_grad``: the mean of the two periodic
neighbours along each axis of the configuration) the right side is zero; for φ⁴ it carries the
hopping term and detects a wrong β with about 1.6 times the z-score of ``x_grad``. Each residual
``mean_i [f_i ∂_i S − ∂_i f_i]`` is averaged over coordinates per configuration, then over a
thinned subset of a run's draws with an ESS-aware error: a chain that samples the wrong
distribution shows a non-zero mean, at the cost of one exact gradient per kept draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from uqmcmc import _arviz
from uqmcmc._validation import positive_int, probability
from uqmcmc.diagnostics.hypothesis import holm, z_and_p
from uqmcmc.diagnostics.runs import is_idata
from uqmcmc.targets.base import check_target

__all__ = ["IDENTITIES", "Identity", "check_identities", "stein_terms"]

Array = jax.Array


def _neighbours(x: Array) -> Array:
    """Mean of the two neighbours (periodic) along every axis of size > 1, per entry."""
    axes = [a for a in range(x.ndim) if x.shape[a] > 1]
    if not axes:
        return jnp.full_like(x, jnp.nan)
    return sum(jnp.roll(x, 1, axis=a) + jnp.roll(x, -1, axis=a) for a in axes) / (2 * len(axes))


class Identity(NamedTuple):
    """A Stein identity ``<f_i dS/dx_i> = <d f_i/dx_i>`` (both sides averaged over ``i``).

    ``f(x)`` and ``df(x)`` map one configuration to arrays of its shape (``df`` is the
    diagonal of the Jacobian, ``d f_i / d x_i``); ``label`` reads the identity for people.
    Entries of :data:`IDENTITIES` are what :func:`stein_terms` and :func:`check_identities`
    evaluate.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> ident = IDENTITIES["x2_grad"]
    >>> ident.label
    '<x_i^2 dS/dx_i> = 2<x_i>'
    >>> x = jnp.array([1.0, -2.0])
    >>> [float(v) for v in ident.f(x)], [float(v) for v in ident.df(x)]
    ([1.0, 4.0], [2.0, -4.0])
    >>> cubic = Identity(lambda x: x**3, lambda x: 3 * x**2, "<x_i^3 dS/dx_i> = 3<x_i^2>")
    >>> bool(jnp.all(cubic.df(x) == IDENTITIES["x3_grad"].df(x)))
    True
    """

    f: Callable[[Array], Array]
    df: Callable[[Array], Array]
    label: str


#: The built-in identities, by name.
IDENTITIES: dict[str, Identity] = {
    "grad": Identity(jnp.ones_like, jnp.zeros_like, "<dS/dx_i> = 0"),
    "x_grad": Identity(lambda x: x, jnp.ones_like, "<x_i dS/dx_i> = 1"),
    "x2_grad": Identity(lambda x: x * x, lambda x: 2 * x, "<x_i^2 dS/dx_i> = 2<x_i>"),
    "x3_grad": Identity(lambda x: x**3, lambda x: 3 * x * x, "<x_i^3 dS/dx_i> = 3<x_i^2>"),
    "nbr_grad": Identity(_neighbours, jnp.zeros_like, "<x_nn(i) dS/dx_i> = 0"),
}


def stein_terms(
    grad: Callable[[Array], Array], x: Array, identities: Sequence[str] = tuple(IDENTITIES)
) -> dict[str, tuple[Array, Array]]:
    """Both sides of each identity for ONE configuration, averaged over coordinates.

    Parameters
    ----------
    grad
        The exact gradient ``dS/dx`` of one configuration (e.g. ``target.grad``).
    x
        One configuration.
    identities
        Names in :data:`IDENTITIES`.

    Returns
    -------
    dict name -> ``(lhs, rhs)`` with ``lhs = mean_i f_i dS/dx_i`` and ``rhs = mean_i df_i/dx_i``;
    their expectations agree under the exact distribution. Pure and jit-able; one gradient call.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> terms = stein_terms(lambda x: x, jnp.array([1.0, 2.0]), ["x_grad", "x2_grad"])
    >>> [float(v) for v in terms["x2_grad"]]  # mean(x^3), mean(2x)
    [4.5, 3.0]
    """
    x = jnp.asarray(x)
    g = grad(x)
    out = {}
    for name in identities:
        ident = IDENTITIES[name]
        out[name] = (jnp.mean(ident.f(x) * g), jnp.mean(ident.df(x)))
    return out


def _positions(run, name: str) -> np.ndarray:
    if is_idata(run):
        post = _arviz.group(run, "posterior")
        if "position" not in post:
            raise ValueError(
                f"runs[{name!r}] has no posterior 'position': run the chains with "
                "run_chains(..., record_positions=True)"
            )
        return np.asarray(post["position"])
    x = np.asarray(run)
    if x.ndim < 2:
        raise ValueError(f"runs[{name!r}] must have shape (chain, draw, ...), got {x.shape}")
    return x


def _thin(x: np.ndarray, num_positions: int) -> np.ndarray:
    """Evenly spaced draws of each chain, at most ``num_positions`` of them."""
    n_draw = x.shape[1]
    idx = np.unique(np.linspace(0, n_draw - 1, min(num_positions, n_draw)).round().astype(int))
    return x[:, idx]


def check_identities(
    target: Any,
    runs: Mapping[str, Any],
    *,
    identities: Sequence[str] | None = None,
    num_positions: int = 100,
    level: float = 0.05,
    batch_size: int = 256,
) -> pd.DataFrame:
    """Test each run against exact Stein identities on a thinned subset of its positions.

    Parameters
    ----------
    target
        Anything with ``action`` and ``grad`` of ONE configuration (only ``grad`` is called).
    runs
        Mapping run name -> ArviZ data with ``posterior["position"]`` (from
        ``run_chains(..., record_positions=True)``) or an array ``(chain, draw, *shape)``.
    identities
        Names in :data:`IDENTITIES`; default all of them.
    num_positions
        Draws kept per chain (evenly spaced, at least 4); the exact-gradient cost of a run is
        ``chains × num_positions``.
    level
        Family-wise significance level per run: Holm's correction over the run's identities.
    batch_size
        Configurations per vectorised gradient call.

    Returns
    -------
    pandas.DataFrame
        One row per (run, identity): ``run``, ``identity``, ``label``, ``lhs`` and ``rhs`` (the
        two sides' means), ``residual`` (mean of ``lhs − rhs`` per draw), ``mcse`` (ArviZ,
        ESS-aware, over the kept draws), ``ess_bulk``, ``z``, ``p_value``, ``p_holm``,
        ``flagged`` (``p_holm <= level``), ``n_positions`` and ``n_grad_evals``.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc.targets import Gaussian
    >>> target = Gaussian(np.zeros(3), np.eye(3))
    >>> draws = np.random.default_rng(0).normal(size=(4, 200, 3))
    >>> table = check_identities(target, {"iid": draws, "hot": 1.3 * draws}, num_positions=200)
    >>> table.groupby("run")["flagged"].any().to_dict()
    {'hot': True, 'iid': False}
    >>> int(table["n_grad_evals"].iloc[0])
    800
    """
    check_target(target)
    if not isinstance(runs, Mapping) or is_idata(runs) or not runs:
        raise ValueError("runs must be a non-empty mapping run name -> ArviZ data or array")
    names = list(IDENTITIES) if identities is None else list(identities)
    unknown = [n for n in names if n not in IDENTITIES]
    if unknown or not names:
        raise ValueError(f"identities must be names in {sorted(IDENTITIES)}, got {names}")
    num_positions = positive_int("num_positions", num_positions, minimum=4)
    batch_size = positive_int("batch_size", batch_size)
    level = probability("level", level)

    @jax.jit
    def evaluate(xs):
        return jax.lax.map(lambda x: stein_terms(target.grad, x, names), xs, batch_size=batch_size)

    rows = []
    for run_name, run in runs.items():
        x = _thin(_positions(run, run_name), num_positions)
        n_chain, n_keep = x.shape[:2]
        terms = jax.device_get(evaluate(jnp.asarray(x.reshape(n_chain * n_keep, *x.shape[2:]))))
        run_rows = []
        for name in names:
            lhs, rhs = (np.asarray(t, dtype=float).reshape(n_chain, n_keep) for t in terms[name])
            s = _arviz.summarize(lhs - rhs)
            z, p = z_and_p(s["mean"], s["mcse"])
            run_rows.append(
                {
                    "run": run_name,
                    "identity": name,
                    "label": IDENTITIES[name].label,
                    "lhs": float(lhs.mean()),
                    "rhs": float(rhs.mean()),
                    "residual": s["mean"],
                    "mcse": s["mcse"],
                    "ess_bulk": s["ess_bulk"],
                    "z": z,
                    "p_value": p,
                    "n_positions": n_chain * n_keep,
                    "n_grad_evals": n_chain * n_keep,
                }
            )
        adj = holm(np.array([r["p_value"] for r in run_rows]))
        for r, a in zip(run_rows, adj, strict=True):
            r["p_holm"] = float(a)
            r["flagged"] = bool(a <= level) if math.isfinite(a) else False
        rows.extend(run_rows)
    table = pd.DataFrame(rows)
    table.attrs.update(
        level=level,
        multiple_comparisons="Holm step-down over the identities of one run",
        error="ArviZ ESS-aware MCSE of the per-draw residual over the kept draws",
    )
    return table
