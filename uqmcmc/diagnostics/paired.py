"""Paired comparisons of chain runs: the difference of an observable between two runs, with
its error, z-test, Holm's correction and minimal detectable bias.

A run is compared with the reference that isolates one effect, not always with the exact
chain: a penalised draws-mode chain targets the surrogate's mean, so its difference from the
same backend's mean-mode chain is the noise-and-penalty effect alone, while the mean-mode
chain's difference from the exact chain is the frozen error of the surrogate.

Two runs made with common random numbers (the same key for every step and chain, the same
starts: :func:`~uqmcmc.mcmc.batched` with ``common_key=True``, or separate runs with one key)
are COUPLED: they record the attribute ``coupling`` with the same value. Their difference is
then a series of its own, draw by draw, whose error (ArviZ MCSE of ``run - reference``) is far
smaller than the independent ``sqrt(mcse_run² + mcse_ref²)`` when the runs move alike; each run
still samples its own distribution, so the difference still estimates the effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from uqmcmc import _arviz
from uqmcmc._validation import probability
from uqmcmc.diagnostics.estimates import estimate_from
from uqmcmc.diagnostics.hypothesis import holm, minimal_detectable_bias, z_and_p
from uqmcmc.diagnostics.runs import posterior_arrays

__all__ = ["COUPLING", "coupled", "paired_differences"]

#: The attribute naming a run's common-random-number stream (equal values: coupled runs).
COUPLING = "coupling"


def coupled(run: Any, reference: Any) -> bool:
    """Whether two runs were made with common random numbers: the same non-empty
    :data:`COUPLING` attribute and the same ``(chain, draw)`` shape.

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> a = make_idata({"x": np.zeros((2, 5))}, attrs={"coupling": "k0"})
    >>> b = make_idata({"x": np.ones((2, 5))}, attrs={"coupling": "k0"})
    >>> coupled(a, b), coupled(a, make_idata({"x": np.ones((2, 5))}))
    (True, False)
    """
    tag_a, tag_b = _arviz.attrs(run).get(COUPLING), _arviz.attrs(reference).get(COUPLING)
    if not tag_a or tag_a != tag_b:
        return False
    post_a, post_b = _arviz.group(run, "posterior"), _arviz.group(reference, "posterior")
    dims = ("chain", "draw")
    return all(post_a.sizes.get(d) == post_b.sizes.get(d) for d in dims)


def _difference(post_a, post_b, name: str, a: dict, b: dict, paired: bool) -> tuple[float, float]:
    """The difference of the means and its error: from the draw-by-draw difference series of
    coupled runs (a plain posterior variable), else from the two independent errors."""
    if paired and name in post_a and name in post_b and post_a[name].ndim == 2:
        series = post_a[name] - post_b[name]
        if not series.any():  # identical runs: the difference is exactly zero
            return 0.0, 0.0
        return float(series.mean()), _arviz.mcse(series)
    return a["mean"] - b["mean"], math.hypot(a["mcse"], b["mcse"])


def paired_differences(
    pairs: Mapping[tuple[str, str], tuple[Any, Any]],
    observables: Sequence[str],
    *,
    level: float = 0.05,
    power: float = 0.8,
) -> pd.DataFrame:
    """``mean(run) - mean(reference)`` for each pair and observable, with a verdict.

    For independent chain sets the error of the difference is ``sqrt(mcse_run² + mcse_ref²)``
    (ArviZ MCSE, or the block jackknife for derived quantities); for :func:`coupled` runs it is
    the MCSE of the draw-by-draw difference (plain means; derived quantities keep the
    independent formula, which overstates a coupled pair's error).
    The tests of one ``group`` (the first element of a pair's key, e.g. a backend) form one
    family under Holm's correction; ``mdb`` is each test's minimal detectable difference at the
    family's Bonferroni level and the stated ``power``
    (:func:`~uqmcmc.diagnostics.hypothesis.minimal_detectable_bias`).

    Parameters
    ----------
    pairs
        ``(group, effect) -> (run, reference)``, both ArviZ data.
    observables
        Names as in :func:`~uqmcmc.diagnostics.compare_to_exact` (posterior variables or the
        target's derived quantities); those missing from a pair are skipped.
    level, power
        Family-wise level per group and the power that defines ``mdb``.

    Returns
    -------
    pandas.DataFrame
        One row per (group, effect, observable): ``group``, ``effect``, ``observable``,
        ``difference``, ``error``, ``z``, ``p_value``, ``p_holm``, ``detected``, ``mdb`` and
        ``verdict`` (``"detected"`` or ``"none above <mdb>"``).

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc._arviz import make_idata
    >>> rng = np.random.default_rng(0)
    >>> ref = make_idata({"x": rng.normal(size=(4, 1000))})
    >>> same = make_idata({"x": rng.normal(size=(4, 1000))})
    >>> shifted = make_idata({"x": 0.3 + rng.normal(size=(4, 1000))})
    >>> table = paired_differences({("a", "same"): (same, ref), ("a", "shift"): (shifted, ref)},
    ...                            ["x"])
    >>> table.set_index("effect")["detected"].to_dict()
    {'same': False, 'shift': True}
    >>> table.set_index("effect")["verdict"]["same"]
    'none above 0.07'
    """
    level = probability("level", level)
    power = probability("power", power)
    rows = []
    for (group, effect), (run, reference) in pairs.items():
        post_a, attrs_a = posterior_arrays(run), _arviz.attrs(run)
        post_b, attrs_b = posterior_arrays(reference), _arviz.attrs(reference)
        paired = coupled(run, reference)
        for name in observables:
            try:
                a = estimate_from(post_a, attrs_a, name)
                b = estimate_from(post_b, attrs_b, name)
            except ValueError:
                continue
            diff, err = _difference(post_a, post_b, name, a, b, paired)
            z, p = z_and_p(diff, err)
            rows.append({"group": group, "effect": effect, "observable": name,
                         "difference": diff, "error": err, "z": z, "p_value": p,
                         "paired": paired})  # fmt: skip
    columns = ["group", "effect", "observable", "difference", "error", "z", "p_value", "paired"]
    table = pd.DataFrame(rows, columns=columns)
    p_holm, mdb = [], []
    for _, family in table.groupby("group", sort=False):
        adjusted = holm(family["p_value"].to_numpy())
        n_tests = max(1, int(family["p_value"].notna().sum()))
        p_holm.extend(adjusted)
        mdb.extend(minimal_detectable_bias(family["error"].to_numpy(), level, n_tests, power))
    order = [i for _, family in table.groupby("group", sort=False) for i in family.index]
    table = table.loc[order].reset_index(drop=True)
    table["p_holm"] = p_holm
    table["detected"] = table["p_holm"] <= level
    table["mdb"] = mdb
    table["verdict"] = [
        "detected" if d else f"none above {m:.2g}"
        for d, m in zip(table["detected"], table["mdb"], strict=True)
    ]
    table.attrs.update(
        level=level,
        power=power,
        error="sqrt(mcse_run^2 + mcse_reference^2) for independent chain sets; the MCSE of the "
        "draw-by-draw difference for coupled runs (column paired)",
        multiple_comparisons="Holm over every test of one group",
    )
    return table
