"""Plots of a comparison: forest, trace, rank, histograms, acceptance, calibration, scatter.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (so nothing
is opened on screen and no global figure registry grows; saving uses the Agg canvas) and writes
a PNG when given ``path``. Runs are read through :mod:`uqmcmc._arviz`, so ArviZ 0.x and 1.x
both work; trace and rank plots are drawn here rather than by ArviZ, whose plotting API differs
between the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats as sps

from uqmcmc.diagnostics.runs import component, posterior_arrays, run_stats

__all__ = [
    "plot_acceptance",
    "plot_calibration",
    "plot_forest",
    "plot_histograms",
    "plot_predicted_vs_true",
    "plot_rank",
    "plot_trace",
]

_NCOLS = 4
_PASS, _FAIL, _EXACT = "tab:blue", "tab:red", "black"


def _figure(n_panels: int, ncols: int = _NCOLS, size=(3.2, 2.6), **kw) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw).ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, list(axes[:n_panels])


def _finish(fig: Figure, path: str | Path | None, title: str | None = None) -> Figure:
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(str(path), dpi=100)
    return fig


def _series(idata, name: str) -> np.ndarray:
    x = component(posterior_arrays(idata), name)
    if x is None:
        raise ValueError(f"var_names: {name!r} is not a scalar posterior series of the run")
    return np.asarray(x, dtype=float)


def plot_forest(
    comparison: pd.DataFrame,
    epistemic: pd.DataFrame | None = None,
    *,
    observables: Sequence[str] | None = None,
    width: float = 2.0,
    path: str | Path | None = None,
) -> Figure:
    """Forest plot of every observable across runs, with the exact value marked.

    Parameters
    ----------
    comparison
        Table from :func:`~uqmcmc.diagnostics.compare_to_exact`: one panel per observable, one
        line per run, ``mean ± width·mcse`` (red where the row failed), the exact value as a
        black line with its ``± width·exact_err`` band.
    epistemic
        Optional table from :func:`~uqmcmc.diagnostics.epistemic_spread`: its interval
        ``[lower, upper]`` is drawn as a wide pale bar on the run of the same name (and the
        member-set rows with no comparison row get a line of their own).
    observables
        Panels to draw (default: all in ``comparison``).
    width
        Error bars in units of the MCSE.
    path
        Write a PNG there.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"run": ["a", "b"], "observable": ["m2", "m2"], "mean": [1.0, 1.2],
    ...                       "mcse": [0.05, 0.05], "exact": [1.0, 1.0],
    ...                       "exact_err": [0.01, 0.01], "pass": [True, False]})
    >>> len(plot_forest(table).axes)
    1
    """
    names = (
        list(observables) if observables is not None else list(dict.fromkeys(comparison.observable))
    )
    if not names:
        raise ValueError("observables: nothing to plot")
    epi = epistemic if epistemic is not None else pd.DataFrame(columns=["run", "observable"])
    runs = list(dict.fromkeys([*comparison.run, *epi.run]))
    fig, axes = _figure(len(names), size=(3.2, 0.5 + 0.35 * len(runs)))
    for ax, name in zip(axes, names, strict=True):
        rows = comparison[comparison.observable == name].set_index("run")
        erows = epi[epi.observable == name].set_index("run")
        ref = pd.DataFrame()
        for table in (rows, erows):
            if ref.empty and "exact" in table:
                ref = table.reindex(columns=["exact", "exact_err"]).dropna(subset=["exact"])
        if not ref.empty:
            value, err = float(ref.exact.iloc[0]), float(np.nan_to_num(ref.exact_err.iloc[0]))
            ax.axvline(value, color=_EXACT, lw=1)
            if err > 0:
                ax.axvspan(value - width * err, value + width * err, color="0.85", lw=0)
        for y, run in enumerate(runs):
            if run in erows.index:
                e = erows.loc[run]
                ax.plot([e["lower"], e["upper"]], [y, y], color="tab:orange", lw=6, alpha=0.4)
                ax.plot([e["mean"]], [y], "|", color="tab:orange", ms=10)
            if run in rows.index:
                r = rows.loc[run]
                ok = pd.isna(r.get("pass")) or bool(r.get("pass"))
                color = _PASS if ok else _FAIL
                xerr = width * r["mcse"]
                ax.errorbar(r["mean"], y, xerr=xerr, fmt="o", ms=4, capsize=2, color=color)
        ax.set_yticks(range(len(runs)), runs)
        ax.set_ylim(len(runs) - 0.5, -0.5)
        ax.set_title(name)
    note = f"mean ± {width:g} MCSE; red: failed; orange: epistemic interval; black: exact"
    return _finish(fig, path, note)


def plot_trace(
    idata,
    var_names: Sequence[str] = ("abs_m", "action_density"),
    *,
    max_points: int = 2000,
    path: str | Path | None = None,
) -> Figure:
    """Trace (left) and per-chain histogram (right) of each variable.

    ``max_points`` caps the drawn points per chain (evenly thinned for display only).

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> idata = make_idata({"x": np.random.default_rng(0).normal(size=(2, 100))})
    >>> len(plot_trace(idata, ["x"]).axes)
    2
    """
    fig = Figure(figsize=(9, 2.2 * len(var_names)), layout="constrained")
    axes = fig.subplots(len(var_names), 2, squeeze=False, width_ratios=[3, 1])
    for (ax_t, ax_h), name in zip(axes, var_names, strict=True):
        x = _series(idata, name)
        step = max(1, x.shape[1] // max_points)
        edges = np.histogram_bin_edges(x, bins=40)
        for c, chain in enumerate(x):
            ax_t.plot(np.arange(0, x.shape[1], step), chain[::step], lw=0.5, color=f"C{c % 10}")
            ax_h.hist(chain, bins=edges, histtype="step", density=True, color=f"C{c % 10}")
        ax_t.set_ylabel(name)
        ax_h.set_yticks([])
    axes[-1, 0].set_xlabel("draw")
    return _finish(fig, path)


def plot_rank(
    idata,
    var_names: Sequence[str] = ("abs_m", "action_density"),
    *,
    bins: int = 20,
    path: str | Path | None = None,
) -> Figure:
    """Rank plot: histogram of each chain's ranks among all draws (flat when chains agree).

    The grey band is the central 99% range of a bin count for uniform ranks.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> idata = make_idata({"x": np.random.default_rng(0).normal(size=(3, 100))})
    >>> len(plot_rank(idata, ["x"]).axes)
    1
    """
    fig, axes = _figure(len(var_names), ncols=2, size=(4.5, 2.6))
    for ax, name in zip(axes, var_names, strict=True):
        x = _series(idata, name)
        ranks = sps.rankdata(x, axis=None).reshape(x.shape)
        edges = np.linspace(0.5, x.size + 0.5, bins + 1)
        per_bin = x.shape[1] / bins
        lo, hi = sps.binom.ppf([0.005, 0.995], x.shape[1], 1 / bins)
        ax.axhspan(lo, hi, color="0.9", lw=0)
        ax.axhline(per_bin, color="0.5", lw=0.8)
        for c, r in enumerate(ranks):
            counts, _ = np.histogram(r, bins=edges)
            ax.stairs(counts, edges, baseline=None, color=f"C{c % 10}", lw=0.8)
        ax.set_title(name)
        ax.set_xlabel("rank")
    return _finish(fig, path)


def plot_histograms(
    runs: Mapping[str, Any],
    exact=None,
    *,
    var: str = "m",
    bins: int = 50,
    path: str | Path | None = None,
) -> Figure:
    """Histogram of ``var`` (default the magnetisation ``m``) for each run over the exact one.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> runs = {"a": make_idata({"m": rng.normal(size=(2, 200))})}
    >>> len(plot_histograms(runs, make_idata({"m": rng.normal(size=(2, 200))})).axes)
    1
    """
    if not runs:
        raise ValueError("runs must contain at least one run")
    data = {name: _series(idata, var).ravel() for name, idata in runs.items()}
    ref = _series(exact, var).ravel() if exact is not None else None
    edges = np.histogram_bin_edges(
        np.concatenate([*data.values(), *([ref] if ref is not None else [])]), bins
    )
    fig, axes = _figure(len(data), sharex=True)
    for ax, (name, x) in zip(axes, data.items(), strict=True):
        if ref is not None:
            ax.hist(ref, bins=edges, density=True, color="0.8", label="exact")
        ax.hist(x, bins=edges, density=True, histtype="step", color=_PASS, lw=1.2, label=name)
        ax.set_title(name)
        ax.set_xlabel(var)
        ax.set_yticks([])
    axes[0].legend(fontsize="small")
    return _finish(fig, path)


def plot_acceptance(runs: Mapping[str, Any], *, path: str | Path | None = None) -> Figure:
    """Mean acceptance rate, mean penalty and typical σ of ΔŜ per run (bars).

    Panels appear for the statistics some run records (see
    :func:`~uqmcmc.diagnostics.run_stats`).

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> run = make_idata({"m": np.zeros((2, 5))}, {"acceptance_rate": np.full((2, 5), 0.4)})
    >>> len(plot_acceptance({"a": run}).axes)
    1
    """
    if not runs:
        raise ValueError("runs must contain at least one run")
    stats = pd.DataFrame({name: run_stats(idata) for name, idata in runs.items()}).T
    panels = [
        (c, label)
        for c, label in (
            ("acceptance_rate", "acceptance rate"),
            ("penalty_mean", "mean penalty u"),
            ("delta_sd_median", "median σ of ΔŜ"),
        )
        if c in stats and stats[c].notna().any()
    ]
    if not panels:
        raise ValueError("runs: no run records acceptance_rate, penalty or delta_var")
    fig, axes = _figure(len(panels), ncols=len(panels), size=(4.0, 0.8 + 0.3 * len(stats)))
    for ax, (column, label) in zip(axes, panels, strict=True):
        ax.barh(range(len(stats)), stats[column].fillna(0).to_numpy(), color=_PASS)
        ax.set_yticks(range(len(stats)), stats.index if ax is axes[0] else [])
        ax.set_ylim(len(stats) - 0.5, -0.5)
        ax.set_title(label)
    return _finish(fig, path)


def _coverage(mean, var, y, levels: np.ndarray) -> np.ndarray:
    """Fraction of ``y`` inside the central Gaussian interval of each nominal level."""
    mean, var, y = (np.ravel(np.asarray(a, dtype=float)) for a in (mean, var, y))
    z = np.abs(y - mean) / np.sqrt(var)
    half = sps.norm.ppf(0.5 + levels / 2)
    return (z[None, :] <= half[:, None]).mean(axis=1)


def _unpack(name: str, value) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    if len(value) != 3:
        raise ValueError(f"backends[{name!r}] must be a tuple (mean, var, y)")
    mean, var, y = value
    mean, y = np.asarray(mean, dtype=float), np.asarray(y, dtype=float)
    if mean.shape != y.shape:
        raise ValueError(f"backends[{name!r}]: mean {mean.shape} and y {y.shape} differ in shape")
    if var is not None:
        var = np.asarray(var, dtype=float)
        if var.shape != mean.shape:
            raise ValueError(f"backends[{name!r}]: var {var.shape} and mean {mean.shape} differ")
    return mean, var, y


def plot_calibration(
    backends: Mapping[str, tuple[Any, Any, Any]],
    *,
    levels: Sequence[float] = tuple(np.round(np.linspace(0.05, 0.95, 19), 2)),
    path: str | Path | None = None,
) -> Figure:
    """Calibration curves: observed coverage of central Gaussian intervals vs nominal level.

    Parameters
    ----------
    backends
        Mapping backend name -> ``(mean, var, y)``: predictive mean and variance and the true
        values, arrays of one shape (e.g. ``∇S`` on held-out fields).
    levels
        Nominal coverages, each in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=1000)
    >>> len(plot_calibration({"ok": (np.zeros(1000), np.ones(1000), y)}).axes)
    1
    """
    levels = np.asarray(levels, dtype=float)
    if levels.ndim != 1 or not np.all((levels > 0) & (levels < 1)):
        raise ValueError(f"levels must lie strictly between 0 and 1, got {levels}")
    fig, (ax,) = _figure(1, size=(4.0, 3.6))
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8, ls="--")
    for name, value in backends.items():
        mean, var, y = _unpack(name, value)
        if var is None:
            raise ValueError(f"backends[{name!r}]: calibration needs the variance")
        ax.plot(levels, _coverage(mean, var, y, levels), "o-", ms=3, label=name)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize="small")
    return _finish(fig, path)


def plot_predicted_vs_true(
    backends: Mapping[str, tuple[Any, Any, Any]],
    *,
    max_points: int = 4000,
    seed: int = 0,
    label: str = "∇S",
    path: str | Path | None = None,
) -> Figure:
    """Predicted against true values per backend (Tzivrailis et al., Fig. 3), with relative RMSE.

    Parameters
    ----------
    backends
        Mapping backend name -> ``(mean, var, y)`` as in :func:`plot_calibration` (``var`` may
        be ``None``; when given, ±1σ error bars are drawn).
    max_points
        Points drawn per backend (a fixed random subset; the RMSE uses all).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.linspace(-1, 1, 50)
    >>> len(plot_predicted_vs_true({"net": (y + 0.1, None, y)}).axes)
    1
    """
    if not backends:
        raise ValueError("backends must contain at least one backend")
    fig, axes = _figure(len(backends), ncols=3, size=(3.4, 3.2))
    rng = np.random.default_rng(seed)
    for ax, (name, value) in zip(axes, backends.items(), strict=True):
        mean, var, y = (None if a is None else np.ravel(a) for a in _unpack(name, value))
        keep = rng.permutation(y.size)[:max_points]
        rel = np.sqrt(np.mean((mean - y) ** 2) / np.mean(y**2))
        if var is not None:
            ax.errorbar(
                y[keep], mean[keep], yerr=np.sqrt(var[keep]), fmt="none", lw=0.3, color="0.6"
            )
        ax.plot(y[keep], mean[keep], ".", ms=2, color=_PASS)
        lim = [float(min(y.min(), mean.min())), float(max(y.max(), mean.max()))]
        ax.plot(lim, lim, color=_EXACT, lw=0.8)
        ax.set_title(f"{name}: relative RMSE {rel:.3g}")
        ax.set_xlabel(f"true {label}")
        ax.set_ylabel(f"predicted {label}")
    return _finish(fig, path)
