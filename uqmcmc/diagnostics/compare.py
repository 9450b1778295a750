"""Compare surrogate chains with the exact chain, observable by observable.

Every run is ArviZ data read through :mod:`uqmcmc._arviz` (so ArviZ 0.x and 1.x both work):
``posterior`` holds the observables per draw, ``sample_stats`` the kernel's statistics and the
attrs the target's parameters (``L`` is what the derived φ⁴ quantities need).

Two kinds of observable:

* plain means (``abs_m``, ``m2``, ``m4``, ``action_density``, ``sd``, any scalar posterior
  variable, components of small vectors as ``G[1]``): mean ± ESS-aware MCSE from ArviZ;
* derived quantities (``chi_abs``, ``binder``, ``xi``): functions of several means, with a block
  jackknife error (:func:`uqmcmc.stats.jackknife`), computed from the posterior arrays and the
  attrs alone — no target object needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from uqmcmc import _arviz
from uqmcmc._validation import positive, positive_int, probability
from uqmcmc.stats import jackknife
from uqmcmc.targets.phi4 import binder, correlation_length, susceptibility

__all__ = [
    "DEFAULT_OBSERVABLES",
    "DISTRIBUTION_OBSERVABLES",
    "DERIVED",
    "Derived",
    "compare_to_exact",
    "epistemic_spread",
    "estimate",
    "ks_test",
    "run_stats",
]

#: The φ⁴ observables compared by default (those a run does not have are skipped).
DEFAULT_OBSERVABLES = ("abs_m", "m2", "m4", "action_density", "sd", "chi_abs", "binder")

#: Observables whose whole distribution is compared with the exact chain's.
DISTRIBUTION_OBSERVABLES = ("abs_m", "action_density")

#: Largest trailing size of a vector observable that is split into components by default.
_MAX_COMPONENTS = 16

#: R-hat and bulk ESS outside these limits are noted in the ``flags`` column.
_RHAT_LIMIT = 1.01
_ESS_LIMIT = 100.0

# Per-step flags of the noise-aware kernels (uqmcmc.mcmc), counted over a run.
_COUNTED_FLAGS = ("nonfinite", "out_of_range")


class Derived(NamedTuple):
    """A function of several posterior means, estimated with a block jackknife.

    ``make(attrs)`` returns the function of the means of ``inputs``; ``attrs`` are the run's
    attrs (e.g. ``L``). An entry of :data:`DERIVED` is available by name to :func:`estimate`
    and :func:`compare_to_exact`.

    Examples
    --------
    >>> spec = DERIVED["chi_abs"]  # V (<M^2> - <|M|>^2) on an L x L lattice
    >>> spec.inputs
    ('abs_m', 'm2')
    >>> round(float(spec.make({"L": 4})(0.5, 0.3)), 2)
    0.8
    >>> kurtosis = Derived(("m4", "m2"), lambda attrs: lambda m4, m2: m4 / m2**2)
    >>> kurtosis.make({})(3.0, 1.0)
    3.0
    """

    inputs: tuple[str, ...]
    make: Callable[[Mapping[str, Any]], Callable[..., float]]


def _lattice_size(attrs: Mapping[str, Any], what: str) -> int:
    if "L" not in attrs:
        raise ValueError(f"{what} needs the lattice size: the run's attrs have no 'L'")
    return int(attrs["L"])


#: The derived φ⁴ quantities, from the posterior means and the attrs alone.
DERIVED: dict[str, Derived] = {
    "chi_abs": Derived(
        ("abs_m", "m2"),
        lambda a: lambda abs_m, m2: susceptibility(abs_m, m2, _lattice_size(a, "chi_abs") ** 2),
    ),
    "binder": Derived(("m2", "m4"), lambda a: binder),
    "xi": Derived(
        ("m2", "Gp1"),
        lambda a: (
            lambda m2, gp1: correlation_length(
                m2 * _lattice_size(a, "xi") ** 2, gp1, _lattice_size(a, "xi")
            )
        ),
    ),
}


# -- reading runs -------------------------------------------------------------------------------
def _is_idata(obj: Any) -> bool:
    try:
        return _arviz.has_group(obj, "posterior")
    except (AttributeError, TypeError):
        return False


def _posterior(idata) -> dict[str, np.ndarray]:
    post = _arviz.group(idata, "posterior")
    return {str(k): np.asarray(v) for k, v in post.data_vars.items()}


def _sample_stats(idata) -> dict[str, np.ndarray]:
    if not _arviz.has_group(idata, "sample_stats"):
        return {}
    ss = _arviz.group(idata, "sample_stats")
    return {str(k): np.asarray(v) for k, v in ss.data_vars.items()}


def _component(posterior: Mapping[str, np.ndarray], name: str) -> np.ndarray | None:
    """The ``(chain, draw)`` series called ``name``: a variable or a component ``G[1]``."""
    if name in posterior:
        x = posterior[name]
        return x if x.ndim == 2 else None
    if name.endswith("]") and "[" in name:
        base, _, idx = name[:-1].partition("[")
        x = posterior.get(base)
        if x is not None and x.ndim == 3 and idx.isdigit() and int(idx) < x.shape[2]:
            return x[:, :, int(idx)]
    return None


def _available(posterior: Mapping[str, np.ndarray]) -> list[str]:
    """Every scalar series of a posterior, vectors split into components."""
    names = []
    for name, x in posterior.items():
        if name == "position":
            continue
        if x.ndim == 2:
            names.append(name)
        elif x.ndim == 3 and x.shape[2] <= _MAX_COMPONENTS:
            names.extend(f"{name}[{i}]" for i in range(x.shape[2]))
    names.extend(d for d, spec in DERIVED.items() if all(i in posterior for i in spec.inputs))
    return names


def estimate(idata, name: str) -> dict[str, float]:
    """Estimate of one observable of a run, with its error.

    Parameters
    ----------
    idata
        ArviZ data with a ``posterior`` group.
    name
        A scalar posterior variable, a vector component such as ``"G[1]"``, or a derived quantity
        of :data:`DERIVED` (``chi_abs``, ``binder``, ``xi``).

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
    >>> idata = make_idata({"abs_m": abs(m), "m2": m**2, "m4": m**4}, attrs={"L": 4})
    >>> abs(estimate(idata, "binder")["mean"]) < 0.1  # 1 - 3/(3*1) for a Gaussian
    True
    >>> sorted(estimate(idata, "m2"))
    ['ess_bulk', 'ess_tail', 'mcse', 'mean', 'method', 'r_hat', 'sd']
    """
    return _estimate(_posterior(idata), _arviz.attrs(idata), name)


def _estimate(posterior, attrs, name: str) -> dict[str, Any]:
    x = _component(posterior, name)
    if x is not None:
        return {**_arviz.summarize(x), "method": "mcse"}
    if name in DERIVED:
        spec = DERIVED[name]
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


def _reference(exact, names: Iterable[str]) -> dict[str, tuple[float, float]]:
    """``name -> (value, error)`` from an exact chain or a mapping of known values."""
    out = {}
    if _is_idata(exact):
        post, attrs = _posterior(exact), _arviz.attrs(exact)
        for name in names:
            est = _estimate(post, attrs, name)
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


def _resolve_observables(runs: Mapping[str, Any], exact, observables) -> list[str]:
    if observables is not None:
        if isinstance(observables, str):
            raise ValueError(f"observables must be a list of names, got the string {observables!r}")
        return list(observables)
    have = None
    for idata in runs.values():
        names = set(_available(_posterior(idata)))
        have = names if have is None else have & names
    have = have or set()
    if _is_idata(exact):
        have &= set(_available(_posterior(exact)))
    elif exact is not None:
        have &= set(exact)
    default = [n for n in DEFAULT_OBSERVABLES if n in have]
    if default:
        return default
    return [n for n in _available(_posterior(next(iter(runs.values())))) if n in have]


def _check_runs(runs) -> None:
    if not isinstance(runs, Mapping) or _is_idata(runs):
        raise ValueError("runs must be a mapping run name -> ArviZ data")
    if not runs:
        raise ValueError("runs must contain at least one run")
    for name, idata in runs.items():
        if not _is_idata(idata):
            raise ValueError(f"runs[{name!r}] is not ArviZ data with a posterior group")


# -- run-level statistics -----------------------------------------------------------------------
def run_stats(idata) -> dict[str, float]:
    """Summaries of a run's ``sample_stats``: acceptance, penalty, ΔŜ variance, non-finite count.

    Returns
    -------
    dict with whichever of these the run records: ``acceptance_rate`` and ``is_accepted``
    (means), ``penalty_mean``, ``penalty_max`` (over steps with a finite penalty),
    ``delta_var_mean``, ``delta_sd_median`` (the typical σ of ΔŜ), and the counts of rejected
    steps ``nonfinite`` (non-finite prediction) and ``out_of_range`` (estimated-variance
    penalty outside its valid range).

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> idata = make_idata({"m": np.zeros((2, 4))},
    ...                    {"acceptance_rate": np.full((2, 4), 0.5), "penalty": np.ones((2, 4))})
    >>> run_stats(idata)
    {'acceptance_rate': 0.5, 'penalty_mean': 1.0, 'penalty_max': 1.0}
    """
    ss = _sample_stats(idata)
    out: dict[str, float] = {}
    for name in ("acceptance_rate", "is_accepted"):
        if name in ss:
            out[name] = float(np.nanmean(ss[name]))
    if "penalty" in ss:
        finite = ss["penalty"][np.isfinite(ss["penalty"])]  # inf marks an out-of-range step
        out["penalty_mean"] = float(finite.mean()) if finite.size else float("nan")
        out["penalty_max"] = float(finite.max()) if finite.size else float("nan")
    if "delta_var" in ss:
        var = ss["delta_var"]
        out["delta_var_mean"] = float(np.nanmean(var))
        out["delta_sd_median"] = float(np.sqrt(np.nanmedian(var)))
    for name in _COUNTED_FLAGS:
        if name in ss:
            out[name] = int(np.sum(ss[name]))
    return out


# -- distribution test --------------------------------------------------------------------------
def _autocorrelation_time(x: np.ndarray) -> float:
    """Integrated autocorrelation time ``draws / ESS`` (smaller of bulk and tail ESS)."""
    return x.size / min(_arviz.ess(x, "bulk"), _arviz.ess(x, "tail"), float(x.size))


def _matched_blocks(samples: Sequence[np.ndarray], block_factor: float) -> list[np.ndarray]:
    """Cut the chains of every sample into blocks spanning the same number ``c`` of that
    sample's own autocorrelation times, so that blocks of either sample carry about the same
    information (and are exchangeable under the null hypothesis).

    With ``r_s`` the chain length of sample ``s`` in its autocorrelation times, the shortest
    ``r = min r_s`` is cut into ``ceil(r / block_factor)`` equal blocks per chain, which fixes
    ``c`` (at most ``block_factor``, over half of it unless whole chains are shorter); every
    other sample is cut into ``round(r_s / c)`` equal blocks per chain. The few draws left over
    are dropped from the start of each chain.

    Returns the blocks of each sample, shape ``(chain * blocks, length)``.
    """
    lengths = [a.shape[1] / _autocorrelation_time(a) for a in samples]
    shortest = min(lengths)
    c = shortest / math.ceil(shortest / block_factor)
    out = []
    for a, r in zip(samples, lengths, strict=True):
        k = max(1, round(r / c))
        n = a.shape[1] // k
        out.append(a[:, a.shape[1] - k * n :].reshape(a.shape[0] * k, n))
    return out


def ks_test(
    x: np.ndarray,
    y: np.ndarray,
    *,
    block_factor: float = 20.0,
    n_perm: int = 999,
    n_grid: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test between two autocorrelated chain sets.

    The statistic ``D`` is the largest difference of the two empirical CDFs, evaluated at up to
    ``n_grid`` quantiles of the pooled draws (exact KS ``D`` within about ``1 / n_grid``).
    Its significance comes from a permutation over blocks. Each sample's chains are cut into
    contiguous blocks spanning the same number ``c`` of that sample's OWN integrated
    autocorrelation time (``draws / ESS``): ``c`` is at most ``block_factor``, and smaller when
    one sample's chains are shorter than that (its blocks are then whole chains). Blocks from
    either sample then carry about the same information, so under the null hypothesis they are
    nearly exchangeable; they are reassigned at random between the samples, each weighing
    equally in its sample's CDF.

    Matching the blocks' information keeps the size when the samples mix at different speeds,
    e.g. short MALA chains against a long checkerboard reference: with one common block length
    the fast-mixing sample's blocks are far less noisy than the slow one's and the permutation
    null too narrow (exact-ΔS MALA against checkerboard chains of the compare workflow's quick
    run were rejected in 27-35% of repetitions at the 5% level; with matched blocks in
    4.5-5%). Long blocks keep the correlation between neighbouring blocks of a chain, which
    the permutation ignores, small (5.4 ± 0.4% false rejections at the 5% level with 20
    autocorrelation times, 6.2% with 5). Plain KS, which takes draws as independent, rejects
    identical distributions most of the time on correlated chains. The resolution is limited
    by the number of blocks: with whole chains as blocks, by the number of chains.

    Parameters
    ----------
    x, y
        Draws of shape ``(chain, draw)``, at least 4 draws per chain.
    block_factor
        Largest block length, in autocorrelation times (> 0).
    n_perm
        Number of random permutations; the smallest p-value is ``1 / (n_perm + 1)``.
    n_grid
        Number of pooled quantiles at which the CDFs are compared.
    seed
        Seed of the permutations (the result is deterministic).

    Returns
    -------
    (D, p_value)
        ``D`` between the draws the blocks keep (all but a few at the start of each chain).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> d, p = ks_test(rng.normal(size=(4, 500)), rng.normal(size=(4, 500)))
    >>> bool(p > 0.01)
    True
    >>> d, p = ks_test(rng.normal(size=(4, 500)), 1 + rng.normal(size=(4, 500)))
    >>> p
    0.001
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    for name, a in (("x", x), ("y", y)):
        if a.ndim != 2 or a.shape[1] < 4:
            raise ValueError(f"{name} must have shape (chain, draw) with draw >= 4, got {a.shape}")
    positive("block_factor", block_factor)
    n_perm = positive_int("n_perm", n_perm)
    n_grid = positive_int("n_grid", n_grid, minimum=2)
    bx, by = _matched_blocks([x, y], block_factor)
    values = np.concatenate([bx.ravel(), by.ravel()])
    sizes = np.r_[np.full(bx.shape[0], bx.shape[1]), np.full(by.shape[0], by.shape[1])]
    owner = np.repeat(np.arange(sizes.size), sizes)
    # The CDFs are compared at (up to) n_grid quantiles of the pooled draws: a set that does not
    # change under permutation, so the test stays exact, and one small matrix product per batch.
    grid = np.unique(np.quantile(values, np.linspace(0, 1, n_grid + 1)[1:-1]))
    bins = owner * (grid.size + 1) + np.searchsorted(grid, values)
    counts = np.bincount(bins, minlength=sizes.size * (grid.size + 1)).reshape(sizes.size, -1)
    cdf = np.cumsum(counts, axis=1)[:, :-1] / sizes[:, None]  # each block's CDF on the grid
    cdf_sum = cdf.sum(axis=0)
    n_blocks, n_blocks_x = sizes.size, bx.shape[0]

    def statistic(in_x: np.ndarray) -> np.ndarray:  # in_x: (perms, blocks) 0/1
        sum_x = in_x @ cdf
        return np.abs(sum_x / n_blocks_x - (cdf_sum - sum_x) / (n_blocks - n_blocks_x)).max(axis=1)

    d = float(statistic((np.arange(n_blocks) < n_blocks_x)[None].astype(float))[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, n_perm, 100):
        keys = rng.random((min(100, n_perm - start), n_blocks))
        in_x = (np.argsort(keys, axis=1) < n_blocks_x).astype(float)
        exceed += int(np.sum(statistic(in_x) >= d - 1e-12))
    return d, (exceed + 1) / (n_perm + 1)


# -- the comparison -----------------------------------------------------------------------------
def _z_and_p(diff: float, err: float) -> tuple[float, float]:
    if not (math.isfinite(diff) and math.isfinite(err)):
        return float("nan"), float("nan")
    if err == 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    z = diff / err
    return z, float(2 * sps.norm.sf(abs(z)))


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (``nan`` entries are left out of the family)."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok])]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out


def _flags(est: Mapping[str, float]) -> str:
    flags = []
    if est["r_hat"] > _RHAT_LIMIT:
        flags.append(f"r_hat>{_RHAT_LIMIT}")
    if est["ess_bulk"] < _ESS_LIMIT:
        flags.append(f"ess_bulk<{_ESS_LIMIT:g}")
    return ";".join(flags)


def compare_to_exact(
    runs: Mapping[str, Any],
    exact,
    *,
    observables: Sequence[str] | None = None,
    distributions: Sequence[str] = DISTRIBUTION_OBSERVABLES,
    level: float = 0.05,
) -> pd.DataFrame:
    """Compare every run with the exact chain, observable by observable.

    For each run and observable: the estimate with its error, the bias against the exact value
    and its z-score with the combined error ``sqrt(mcse_run² + err_exact²)``, ESS (bulk, tail),
    R-hat, and for :data:`DISTRIBUTION_OBSERVABLES` a two-sample KS test of the whole
    distribution (:func:`ks_test`: autocorrelation accounted for by permuting blocks of chains
    between the run and the exact chain, each block as many of its own chain's autocorrelation
    times long, so that a fast- and a slow-mixing sampler can be compared). The run-level
    statistics of :func:`run_stats` (acceptance, penalty, ΔŜ variance) are repeated on each row.

    Pass/fail, multiple comparisons: the tests of one run (one z-test per observable, one KS
    test per distribution) form one family, and Holm's step-down correction keeps the chance of
    failing an unbiased run below ``level`` whatever the correlations between observables. A
    row passes when its smallest Holm-adjusted p-value (``p_holm``) exceeds ``level``; a run
    passes when all its rows do.

    Parameters
    ----------
    runs
        Mapping run name -> ArviZ data (``posterior`` of observables, optional ``sample_stats``).
    exact
        ArviZ data of the exact chain, or a mapping observable -> known value given as a float,
        ``(mean, err)`` or ``{"mean": ..., "err": ...}`` (e.g. a reference table; no
        distribution test then).
    observables
        Names to compare: posterior variables, components such as ``"G[1]"`` or derived
        quantities (:data:`DERIVED`). Default: the φ⁴ set :data:`DEFAULT_OBSERVABLES` present in
        every run and the reference, else every scalar series they share.
    distributions
        Observables that also get the distribution test (when both sides are chains).
    level
        Family-wise significance level per run, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        One row per (run, observable): ``run``, ``observable``, ``method`` (``mcse`` or
        ``jackknife``), ``mean``, ``mcse``, ``sd``, ``ess_bulk``, ``ess_tail``, ``r_hat``,
        ``exact``, ``exact_err``, ``bias``, ``bias_err``, ``z``, ``p_value``, ``dist_stat``
        (KS ``D``), ``dist_p``, ``p_holm``, ``pass``, ``flags`` (``r_hat>1.01``,
        ``ess_bulk<100``), then the :func:`run_stats` columns. ``df.attrs`` records the level and
        the methods.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(1)
    >>> runs = {"good": make_idata({"x": rng.normal(size=(4, 1000))}),
    ...         "bad": make_idata({"x": 0.3 + rng.normal(size=(4, 1000))})}
    >>> exact = make_idata({"x": rng.normal(size=(4, 1000))})
    >>> table = compare_to_exact(runs, exact, distributions=["x"])
    >>> table.set_index("run")["pass"].to_dict()
    {'good': True, 'bad': False}
    """
    _check_runs(runs)
    level = probability("level", level)
    names = _resolve_observables(runs, exact, observables)
    if not names:
        raise ValueError("observables: no observable is shared by the runs and the reference")
    ref = _reference(exact, names)
    exact_post = _posterior(exact) if _is_idata(exact) else None

    rows = []
    for run_name, idata in runs.items():
        post, attrs = _posterior(idata), _arviz.attrs(idata)
        rs = run_stats(idata)
        run_rows = []
        for name in names:
            est = _estimate(post, attrs, name)
            value, value_err = ref.get(name, (float("nan"), float("nan")))
            bias = est["mean"] - value
            bias_err = math.hypot(est["mcse"], value_err)
            z, p = _z_and_p(bias, bias_err)
            d = dp = float("nan")
            x = _component(post, name)
            y = _component(exact_post, name) if exact_post is not None else None
            if name in distributions and x is not None and y is not None:
                d, dp = ks_test(x, y)
            run_rows.append(
                {
                    "run": run_name,
                    "observable": name,
                    "method": est["method"],
                    "mean": est["mean"],
                    "mcse": est["mcse"],
                    "sd": est["sd"],
                    "ess_bulk": est["ess_bulk"],
                    "ess_tail": est["ess_tail"],
                    "r_hat": est["r_hat"],
                    "exact": value,
                    "exact_err": value_err,
                    "bias": bias,
                    "bias_err": bias_err,
                    "z": z,
                    "p_value": p,
                    "dist_stat": d,
                    "dist_p": dp,
                    "flags": _flags(est),
                    **rs,
                }
            )
        p_all = np.array([[r["p_value"], r["dist_p"]] for r in run_rows]).ravel()
        adj = _holm(p_all).reshape(-1, 2)
        for r, a in zip(run_rows, adj, strict=True):
            r["p_holm"] = float(np.nanmin(a)) if np.isfinite(a).any() else float("nan")
            r["pass"] = bool(r["p_holm"] > level) if math.isfinite(r["p_holm"]) else None
        rows.extend(run_rows)

    table = pd.DataFrame(rows)
    first = ["run", "observable", "method", "mean", "mcse", "sd", "ess_bulk", "ess_tail", "r_hat"]
    first += ["exact", "exact_err", "bias", "bias_err", "z", "p_value", "dist_stat", "dist_p"]
    first += ["p_holm", "pass", "flags"]
    table = table[first + [c for c in table.columns if c not in first]]
    table.attrs.update(
        level=level,
        multiple_comparisons="Holm step-down over all tests of one run",
        error="ArviZ ESS-aware MCSE; block jackknife for derived quantities",
        distribution_test=(
            "two-sample KS, p by permuting blocks that span the same number (at most 20) of "
            "each sample's own autocorrelation times"
        ),
    )
    return table


# -- epistemic spread ---------------------------------------------------------------------------
def _spread(means: np.ndarray, mcses: np.ndarray, coverage: float) -> dict[str, float]:
    """Spread of per-draw means, split into Monte Carlo and epistemic parts, and the interval.

    The interval is the t prediction interval for one more draw's value,
    ``mean ± t_{K-1} s sqrt(1 + 1/K)`` with ``s`` the std of the ``K`` per-draw means.
    """
    k = means.size
    mean = float(means.mean())
    spread = float(means.std(ddof=1)) if k > 1 else float("nan")
    mcse_part = float(np.sqrt(np.mean(mcses**2)))
    epistemic = math.sqrt(max(0.0, spread**2 - mcse_part**2)) if k > 1 else float("nan")
    half = float(sps.t.ppf(0.5 + coverage / 2, k - 1)) * spread * math.sqrt(1 + 1 / k)
    return {
        "n_members": k,
        "mean": mean,
        "mcse": float(np.sqrt(np.sum(mcses**2)) / k),
        "spread": spread,
        "mcse_part": mcse_part,
        "epistemic_sd": epistemic,
        "lower": mean - half,
        "upper": mean + half,
    }


def epistemic_spread(
    members: Mapping[str, Sequence[Any]],
    exact=None,
    *,
    observables: Sequence[str] | None = None,
    coverage: float = 0.95,
) -> pd.DataFrame:
    """Observable-level epistemic error bars from one chain set per ensemble member / draw.

    For each run and observable, the ``K`` chain sets (each with one member or posterior draw
    held fixed) give ``K`` estimates ``o_k ± mcse_k``. Their standard deviation ``spread`` mixes
    the model's (epistemic) uncertainty with Monte Carlo noise; ``mcse_part`` (the rms of the
    ``mcse_k``) is the Monte Carlo part and ``epistemic_sd = sqrt(max(0, spread² −
    mcse_part²))`` what is left. The epistemic error bar is the t prediction interval of one more
    draw, ``mean ± t_{K−1, coverage} · spread · sqrt(1 + 1/K)`` (``lower``, ``upper``), and
    ``inside`` says whether the exact value lies within it (widened by the exact value's own
    error in quadrature).

    Parameters
    ----------
    members
        Mapping run name -> sequence of ArviZ data, one per member / posterior draw (at least 2).
    exact
        Optional exact chain or mapping of known values (as in :func:`compare_to_exact`).
    observables
        As in :func:`compare_to_exact`.
    coverage
        Nominal coverage of the interval, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        One row per (run, observable): ``run``, ``observable``, ``n_members``, ``mean`` (of the
        per-member estimates), ``mcse`` (Monte Carlo error of that mean), ``spread``,
        ``mcse_part``, ``epistemic_sd``, ``lower``, ``upper``, ``exact``, ``exact_err``, ``z``
        (exact minus mean over the interval's scale) and ``inside``.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> sets = [make_idata({"x": o + rng.normal(size=(4, 400))}) for o in (-0.5, 0.0, 0.4, 0.2)]
    >>> row = epistemic_spread({"ens": sets}, {"x": 0.0}).iloc[0]
    >>> bool(row["inside"]), bool(row["epistemic_sd"] > 3 * row["mcse_part"])
    (True, True)
    """
    coverage = probability("coverage", coverage)
    if not isinstance(members, Mapping) or _is_idata(members) or not members:
        raise ValueError("members must be a non-empty mapping run name -> list of ArviZ data")
    for name, sets in members.items():
        if _is_idata(sets) or not isinstance(sets, Sequence):
            raise ValueError(f"members[{name!r}] must be a sequence of ArviZ data, one per draw")
        positive_int(f"len(members[{name!r}])", len(sets), minimum=2)
        _check_runs({f"{name}[{i}]": s for i, s in enumerate(sets)})
    flat = {f"{n}[{i}]": s for n, sets in members.items() for i, s in enumerate(sets)}
    names = _resolve_observables(flat, exact, observables)
    ref = _reference(exact, names) if exact is not None else {}
    rows = []
    for run_name, sets in members.items():
        data = [(_posterior(s), _arviz.attrs(s)) for s in sets]
        for name in names:
            ests = [_estimate(post, attrs, name) for post, attrs in data]
            row = _spread(
                np.array([e["mean"] for e in ests]), np.array([e["mcse"] for e in ests]), coverage
            )
            value, value_err = ref.get(name, (float("nan"), float("nan")))
            half = (row["upper"] - row["lower"]) / 2
            scale = row["spread"] * math.sqrt(1 + 1 / row["n_members"])
            z = (value - row["mean"]) / math.hypot(scale, value_err)
            rows.append(
                {
                    "run": run_name,
                    "observable": name,
                    **row,
                    "exact": value,
                    "exact_err": value_err,
                    "z": z,
                    "inside": (
                        bool(abs(value - row["mean"]) <= math.hypot(half, value_err))
                        if math.isfinite(value)
                        else None
                    ),
                }
            )
    table = pd.DataFrame(rows)
    table.attrs.update(
        coverage=coverage,
        interval="t prediction interval of one more member: mean ± t s sqrt(1 + 1/K)",
    )
    return table
