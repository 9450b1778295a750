"""The one adapter between uqmcmc's internal form and ArviZ.

Internally a run is plain dicts of numpy arrays shaped ``(chain, draw, ...)``. ArviZ 0.x
returns ``InferenceData`` and ArviZ 1.x returns ``xarray.DataTree`` with a different
``from_dict`` signature; every place in uqmcmc that builds, reads or saves one goes through
the functions here, so both work.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az
import xarray as xr

ARVIZ_MAJOR = int(az.__version__.split(".")[0])


def _clean_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """netCDF attrs must be str or numbers: JSON-encode anything else, drop ``None``."""
    out = {}
    for key, value in (attrs or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, str | int | float):
            value = json.dumps(value, default=str)
        out[str(key)] = value
    return out


def make_idata(
    posterior: Mapping[str, np.ndarray],
    sample_stats: Mapping[str, np.ndarray] | None = None,
    dims: Mapping[str, list[str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
):
    """Build ArviZ data from arrays shaped ``(chain, draw, ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> idata = make_idata({"m": np.zeros((2, 5))}, {"lp": np.ones((2, 5))}, attrs={"L": 4})
    >>> group(idata, "posterior")["m"].shape
    (2, 5)
    """
    posterior = {k: np.asarray(v) for k, v in posterior.items()}
    sample_stats = {k: np.asarray(v) for k, v in (sample_stats or {}).items()}
    attrs = _clean_attrs(attrs)
    dims = dict(dims or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        names = ["posterior", "sample_stats"] if sample_stats else ["posterior"]
        if ARVIZ_MAJOR < 1:
            idata = az.from_dict(posterior=posterior, sample_stats=sample_stats or None, dims=dims)
        else:
            data = {"posterior": posterior, "sample_stats": sample_stats}
            idata = az.from_dict({k: data[k] for k in names}, dims=dims)
            idata.attrs.update(attrs)
        for name in names:
            idata[name].attrs.update(attrs)
        return idata


def group(idata, name: str) -> xr.Dataset:
    """Return group ``name`` (``posterior``, ``sample_stats``) as an ``xarray.Dataset``."""
    obj = idata[name]
    return obj.to_dataset() if hasattr(obj, "to_dataset") else obj


def has_group(idata, name: str) -> bool:
    """Whether ``idata`` has group ``name``."""
    if ARVIZ_MAJOR < 1:
        return name in idata.groups()
    return name in idata.children


def attrs(idata) -> dict[str, Any]:
    """The run's attrs (stored on the posterior group)."""
    return dict(group(idata, "posterior").attrs)


def save(idata, path, *, drop: tuple[str, ...] = ()) -> None:
    """Write to netCDF; ``drop`` names posterior variables to leave out of the file (e.g. whole
    fields), without changing ``idata``."""
    if drop:
        idata = drop_posterior_vars(copy.deepcopy(idata), drop)
    idata.to_netcdf(str(path))


def load(path, *, eager: bool = False):
    """Read what :func:`save` wrote; ``eager``: every array in memory and the file closed (it
    may then be moved or removed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if ARVIZ_MAJOR < 1:
            if eager:
                with az.rc_context({"data.load": "eager"}):
                    return az.from_netcdf(str(path))
            return az.from_netcdf(str(path))
        if eager:
            with xr.open_datatree(str(path)) as tree:
                return tree.load()
        return xr.open_datatree(str(path))


def _scalar_stat(fn, x: np.ndarray, **kwargs) -> float:
    ds = xr.Dataset({"v": (("chain", "draw"), np.asarray(x, dtype=float))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(ds, **kwargs)
    return float(np.asarray(out["v"]))


#: Quantiles of the tail ESS (Vehtari et al. 2021): ArviZ 0.x uses these by default, ArviZ 1.x
#: derives them from ``rcParams["stats.ci_prob"]`` (0.89), so they are passed explicitly.
TAIL_PROB = (0.05, 0.95)


def ess(x: np.ndarray, method: str = "bulk") -> float:
    """Effective sample size of draws ``(chain, draw)`` (ArviZ's rank-normalised ESS).

    ``method="tail"`` is the minimum of the ESS of the 5 % and 95 % quantile indicators on
    every ArviZ line (ArviZ 1.x's own default would be the 5.5 %/94.5 % quantiles).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 500))
    >>> 1000 < ess(x, "bulk") < 3000 and 1000 < ess(x, "tail") < 3000
    True
    """
    kwargs = {"prob": TAIL_PROB} if method == "tail" else {}
    return _scalar_stat(az.ess, x, method=method, **kwargs)


def rhat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat of draws ``(chain, draw)``."""
    return _scalar_stat(az.rhat, x)


def mcse(x: np.ndarray) -> float:
    """Monte Carlo standard error of the mean of draws ``(chain, draw)``."""
    return _scalar_stat(az.mcse, x, method="mean")


def summarize(draws: np.ndarray) -> dict[str, float]:
    """Mean, MCSE, bulk and tail ESS and R-hat of one scalar quantity ``(chain, draw)``.

    Examples
    --------
    >>> import numpy as np
    >>> s = summarize(np.random.default_rng(0).normal(size=(4, 1000)))
    >>> sorted(s)
    ['ess_bulk', 'ess_tail', 'mcse', 'mean', 'r_hat', 'sd']
    """
    x = np.asarray(draws, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"expected draws of shape (chain, draw), got {x.shape}")
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)),
        "mcse": mcse(x),
        "ess_bulk": ess(x, "bulk"),
        "ess_tail": ess(x, "tail"),
        "r_hat": rhat(x) if x.shape[0] > 1 else float("nan"),
    }


def summary(idata, var_names=None, group_name: str = "posterior"):
    """One row per scalar variable: mean, sd, MCSE, bulk/tail ESS, R-hat — the same numbers on
    every ArviZ line (``az.summary``'s intervals, ESS quantiles and columns differ between them).

    Examples
    --------
    >>> import numpy as np
    >>> idata = make_idata({"x": np.random.default_rng(0).normal(size=(2, 200))})
    >>> list(summary(idata).columns)
    ['mean', 'sd', 'mcse', 'ess_bulk', 'ess_tail', 'r_hat']
    """
    import pandas as pd

    data = group(idata, group_name)
    names = list(data.data_vars) if var_names is None else list(var_names)
    rows = {}
    for name in names:
        values = np.asarray(data[name].values, dtype=float)
        if values.ndim != 2:  # vector variables: one row per component
            flat = values.reshape(values.shape[0], values.shape[1], -1)
            for i in range(flat.shape[-1]):
                rows[f"{name}[{i}]"] = summarize(flat[..., i])
        else:
            rows[name] = summarize(values)
    return pd.DataFrame.from_dict(rows, orient="index")


def drop_posterior_vars(idata, names) -> Any:
    """``idata`` with the named posterior variables removed (e.g. whole fields before saving)."""
    post = group(idata, "posterior")
    keep = post.drop_vars([n for n in names if n in post.data_vars])
    if ARVIZ_MAJOR < 1:
        idata.posterior = keep
    else:
        idata["posterior"] = xr.DataTree(keep)
    return idata
