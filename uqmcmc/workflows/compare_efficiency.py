"""The compare workflow's efficiency table: effective samples per network evaluation and per
second for every run, so a reader sees whether ``n`` draws per step plus the penalty beats
evaluating all members every step.

A network evaluation is one forward pass of one network (member, mask, posterior draw) on one
configuration. Per MALA step and chain: ``mean`` mode evaluates the quadrature nodes with ``x'``
(3 for Simpson) at the backend's :attr:`~uqmcmc.uq.base.UQBackend.evaluations_per_mean` each;
``draws`` mode ``n_draws`` single networks at every node plus the mean at ``x'`` for the drift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from uqmcmc import _arviz
from uqmcmc.mcmc import QUADRATURE

#: Observables whose effective samples the table counts (phi^4's, the default; a report passes
#: its system's first two headline observables). The first leads :func:`efficiency_findings`.
EFFICIENCY_OBSERVABLES = ("sd", "abs_m")


def ess_column(observable: str) -> str:
    """The column of :func:`efficiency_table` holding ``observable``'s effective samples per
    1000 network evaluations.

    Examples
    --------
    >>> ess_column("sd"), ess_column("x2[0]")
    ('ess_sd_per_1k_evals', 'ess_x2[0]_per_1k_evals')
    """
    return f"ess_{observable}_per_1k_evals"


def evaluations_per_step(attrs: Mapping[str, Any], per_mean: int) -> float:
    """Network evaluations per step and chain of a run with attributes ``attrs`` (its estimator's
    ``params``) whose backend evaluates ``per_mean`` networks for one predictive mean; ``nan``
    for a run without a network (exact or oracle ΔS).

    Examples
    --------
    >>> evaluations_per_step({"estimator": "GradientDelta", "rule": "simpson",
    ...                       "mode": "mean"}, 10)
    30.0
    >>> evaluations_per_step({"estimator": "GradientDelta", "rule": "simpson",
    ...                       "mode": "draws", "n_draws": 8}, 10)
    34.0
    >>> evaluations_per_step({"estimator": "EnergyDelta", "mode": "mean"}, 1)
    2.0
    >>> evaluations_per_step({"estimator": "ExactDelta"}, 1)
    nan
    """
    estimator = attrs.get("estimator")
    if estimator == "GradientDelta":
        ts = QUADRATURE[attrs.get("rule", "simpson")][0]
        nodes = len(ts) if ts[-1] == 1.0 else len(ts) + 1
    elif estimator == "EnergyDelta":
        nodes = ts = 2
    else:
        return math.nan
    if attrs.get("mode") == "draws":
        n_nodes = ts if isinstance(ts, int) else len(ts)
        return float(int(attrs["n_draws"]) * n_nodes + per_mean)
    return float(nodes * per_mean)


def efficiency_table(
    runs: Mapping[str, Any],
    comparison,
    evaluations: Mapping[str, int],
    observables: Sequence[str] = EFFICIENCY_OBSERVABLES,
):
    """One row per run: network evaluations per step, bulk ESS of each of ``observables``
    (from the comparison table), ESS per 1000 network evaluations and per second of the run's
    wall time (compile included; a naive/penalised pair shares one program and one time).

    Parameters
    ----------
    runs
        Run name -> ArviZ data (attributes ``estimator``, ``mode``, ``backend``,
        ``wall_time_s``, ...).
    comparison
        The :func:`~uqmcmc.diagnostics.compare_to_exact` table (``run``, ``observable``,
        ``ess_bulk``).
    evaluations
        Networks one predictive mean evaluates, per backend.
    observables
        Default :data:`EFFICIENCY_OBSERVABLES`; columns ``ess_<obs>``,
        ``ess_<obs>_per_1k_evals`` (:func:`ess_column`) and ``ess_<obs>_per_s`` each (``nan``
        where the comparison has none).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from uqmcmc._arviz import make_idata
    >>> run = make_idata({"sd": np.zeros((4, 100))}, attrs={
    ...     "estimator": "GradientDelta", "rule": "simpson", "mode": "mean", "backend": "b",
    ...     "wall_time_s": 2.0})
    >>> comparison = pd.DataFrame({"run": ["b/mean/none"], "observable": ["sd"],
    ...                            "ess_bulk": [300.0]})
    >>> t = efficiency_table({"b/mean/none": run}, comparison, {"b": 10})
    >>> t.loc[0, ["evals_per_step", "ess_sd", "ess_sd_per_1k_evals", "ess_sd_per_s"]].tolist()
    [30.0, 300.0, 25.0, 150.0]
    >>> t = efficiency_table({"b/mean/none": run}, comparison.assign(observable="energy"),
    ...                      {"b": 10}, ("energy",))
    >>> t.loc[0, ["ess_energy", "ess_energy_per_1k_evals"]].tolist()
    [300.0, 25.0]
    """
    import pandas as pd

    ess = comparison.set_index(["run", "observable"])["ess_bulk"].to_dict()
    rows = []
    for name, idata in runs.items():
        attrs = _arviz.attrs(idata)
        post = _arviz.group(idata, "posterior")
        steps = math.prod(post.sizes[d] for d in ("chain", "draw")) * int(attrs.get("thin", 1))
        per_step = evaluations_per_step(attrs, evaluations.get(attrs.get("backend"), 1))
        wall = float(attrs.get("wall_time_s", math.nan))
        row = {"run": name, "evals_per_step": per_step, "chain_steps": steps, "wall_s": wall}
        for obs in observables:
            e = float(ess.get((name, obs), math.nan))
            row[f"ess_{obs}"] = e
            row[ess_column(obs)] = 1000 * e / (per_step * steps)
            row[f"ess_{obs}_per_s"] = e / wall if wall > 0 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def efficiency_findings(
    table, backends: tuple[str, ...], observables: Sequence[str] = EFFICIENCY_OBSERVABLES
) -> str:
    """One sentence per backend: effective samples of the lead observable (the first of
    ``observables``, ``sd`` for phi^4) per 1000 network evaluations with ``n`` draws per step
    and the penalty, against every member in every step (mean mode).

    Parameters
    ----------
    table
        An :func:`efficiency_table`.
    backends
        The backends, in report order.
    observables
        The table's observables, the lead one first (default :data:`EFFICIENCY_OBSERVABLES`);
        without its column there is nothing to say.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"run": ["b/mean/none", "b/draws/cd"], "evals_per_step": [30, 34],
    ...                       "ess_sd_per_1k_evals": [0.25, 0.5]})
    >>> print(efficiency_findings(table, ("b",)))
    b: 0.5 effective samples of sd per 1000 network evaluations with draws + penalty
    (34 per step) against 0.25 with the mean (30 per step): 2x.
    >>> table = table.rename(columns={"ess_sd_per_1k_evals": "ess_energy_per_1k_evals"})
    >>> print(efficiency_findings(table, ("b",), ("energy", "rg")))
    b: 0.5 effective samples of energy per 1000 network evaluations with draws + penalty
    (34 per step) against 0.25 with the mean (30 per step): 2x.
    """
    lead = observables[0] if len(observables) else "sd"
    column = ess_column(lead)
    if "run" not in table or column not in table:
        return ""
    by_run = table.set_index("run")
    lines = []
    for b in backends:
        mean, draws = f"{b}/mean/none", f"{b}/draws/cd"
        if mean not in by_run.index or draws not in by_run.index:
            continue
        m, d = by_run.loc[mean], by_run.loc[draws]
        ratio = d[column] / m[column]
        lines.append(
            f"{b}: {d[column]:.2g} effective samples of {lead} per 1000 network "
            f"evaluations with draws + penalty ({d['evals_per_step']:g} per step) against "
            f"{m[column]:.2g} with the mean ({m['evals_per_step']:g} per step): "
            f"{ratio:.2g}x."
        )
    return "\n\n".join(lines)
