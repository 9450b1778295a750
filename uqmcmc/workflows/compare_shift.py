"""The compare workflow's domain-shift check: for each backend, the share of the configurations
the exact chain and the backend's surrogate chain visit where its epistemic variance exceeds
its calibrated range (the largest on the test split, drawn like the training set), next to the
frozen error of that chain (:mod:`uqmcmc.diagnostics.domain_shift`).

With ``train_params`` (a training set drawn at another temperature, say) this is the
domain-shift experiment; without, it is the negative control of the same check: the exact
chain samples the training distribution, so its share is about ``1 / (n_test + 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from uqmcmc import _arviz
from uqmcmc.diagnostics.domain_shift import out_of_range
from uqmcmc.uq.acquisition import uncertainty_scores

#: Positions scored per run: evenly spaced draws of every chain, at most this many in all.
MAX_POSITIONS = 4000

#: The scored sets of each backend: the test split, the exact chain, the frozen-error chain.
SETS = ("test split", "exact chain", "surrogate chain")

#: The surrogate chain scored: the predictive mean without penalty (the frozen error's run).
CHAIN = "{b}/mean/none"

SHIFT_TEXT = (
    "Does a chain leave the backend's training domain? A configuration's score is the "
    "backend's epistemic variance there (the mean over outputs); the calibrated range is the "
    "largest score on the test split, drawn like the training set. A configuration of that "
    "distribution exceeds it with probability 1/(n_test + 1) on average, and by less than the "
    "limit (the 99 % quantile of that probability over test splits, Beta(1, n_test)) in 99 % "
    "of test splits. Each row: the share of a chain's configurations beyond the range ± its "
    "Monte Carlo error (from the effective sample size of the indicator), flagged 'out of "
    "range' when it exceeds the limit by more than 2 errors, else the smallest share this "
    "check would have flagged. Exact chain: the target's own configurations; surrogate chain: "
    "the backend's mean-mode chain without penalty, whose bias against the exact chain is the "
    "frozen error (last column, on the lead observable). More test configurations lower the "
    "limit (0.21 at 20, 0.025 at 180)."
)


def positions(idata: Any, max_positions: int = MAX_POSITIONS) -> np.ndarray:
    """The recorded positions of a run, ``(chain, draw, *shape)``, thinned along the draws to
    at most ``max_positions`` in all.

    Examples
    --------
    >>> from uqmcmc._arviz import make_idata
    >>> run = make_idata({"position": np.zeros((2, 100, 3))})
    >>> positions(run, 50).shape
    (2, 25, 3)
    """
    x = np.asarray(_arviz.group(idata, "posterior")["position"])
    stride = max(1, math.ceil(x.shape[0] * x.shape[1] / max_positions))
    return x[:, ::stride]


def shift_scores(
    backend: Any, test_x: Any, exact: Any, chain: Any, max_positions: int = MAX_POSITIONS
) -> dict[str, np.ndarray]:
    """A backend's scores (:func:`~uqmcmc.uq.acquisition.uncertainty_scores`) on each of
    :data:`SETS`: ``(n_test,)`` on the test split, ``(chain, draw)`` on the runs ``exact`` and
    ``chain`` (their recorded positions, :func:`positions`).

    Examples
    --------
    >>> from uqmcmc._arviz import make_idata
    >>> class Known:  # variance x**2
    ...     def predict_mean_var(self, x, *, epistemic_only=False):
    ...         return x, x**2
    >>> run = lambda v: make_idata({"position": np.full((2, 10, 1), v)})
    >>> s = shift_scores(Known(), np.ones((4, 1)), run(1.0), run(3.0))
    >>> s["test split"].shape, s["surrogate chain"].shape, float(s["surrogate chain"][0, 0])
    ((4,), (2, 10), 9.0)
    """
    out = {SETS[0]: uncertainty_scores(backend, np.asarray(test_x))}
    for name, run in zip(SETS[1:], (exact, chain), strict=True):
        x = positions(run, max_positions)
        flat = uncertainty_scores(backend, x.reshape(-1, *x.shape[2:]))
        out[name] = flat.reshape(x.shape[:2])
    return out


def shift_table(
    scores: Mapping[str, Mapping[str, np.ndarray]], decomposition: Any = None,
    observable: str | None = None,
):  # fmt: skip
    """One row per backend and chain (:data:`SETS` but the test split): the share beyond the
    calibrated range (:func:`~uqmcmc.diagnostics.domain_shift.out_of_range`) and, for the
    surrogate chain, its frozen error on ``observable`` from the bias ``decomposition``
    (:func:`~uqmcmc.workflows.compare_decomposition.bias_decomposition`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores = {"b": {"test split": rng.lognormal(size=20),
    ...                 "exact chain": rng.lognormal(size=(4, 200)),
    ...                 "surrogate chain": rng.lognormal(2.0, size=(4, 200))}}
    >>> shift_table(scores)[["chain", "verdict"]].values.tolist()
    [['exact chain', 'within range'], ['surrogate chain', 'out of range']]
    """
    import pandas as pd

    frozen = {}
    if decomposition is not None and len(decomposition) and observable is not None:
        rows = decomposition[(decomposition["effect"] == "frozen error")
                             & (decomposition["observable"] == observable)]  # fmt: skip
        frozen = {r["group"]: r for _, r in rows.iterrows()}
    table = []
    for backend, sets in scores.items():
        for chain in SETS[1:]:
            r = out_of_range(sets[SETS[0]], sets[chain])
            row = {"backend": backend, "chain": chain, **r.as_dict(),
                   "verdict": "out of range" if r.out_of_range else "within range"}  # fmt: skip
            f = frozen.get(backend) if chain == SETS[2] else None
            row["frozen error"] = (
                f"{f['difference']:+.3g} ± {f['error']:.2g}"
                + (" (detected)" if bool(f["detected"]) else "")
                if f is not None
                else ""
            )
            table.append(row)
    return pd.DataFrame(table)


def shift_findings(table: Any, train_params: Mapping[str, Any], params: Mapping[str, Any],
                   observable: str) -> str:  # fmt: skip
    """Plain sentences of :func:`shift_table`: where the training set was drawn, and per
    backend the share of its surrogate chain beyond its range, with the check's power.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"backend": ["b"], "chain": ["surrogate chain"],
    ...     "fraction": [0.4], "error": [0.05], "limit": [0.21], "detectable": [0.3],
    ...     "out_of_range": [True], "frozen error": ["+0.1 ± 0.02 (detected)"]})
    >>> print(shift_findings(table, {"temperature": 0.3}, {"temperature": 0.5}, "energy"))
    Training and test configurations drawn at temperature=0.3, chains at temperature=0.5.
    <BLANKLINE>
    b: 40 % ± 5 % of its surrogate chain beyond its calibrated range (in-distribution at most
    21 %): out of range; frozen error of energy +0.1 ± 0.02 (detected).
    """
    lines = []
    if train_params:
        at = ", ".join(f"{k}={v}" for k, v in train_params.items())
        now = ", ".join(f"{k}={params[k]}" if k in params else f"{k} at its default"
                        for k in train_params)  # fmt: skip
        lines.append(f"Training and test configurations drawn at {at}, chains at {now}.")
    else:
        lines.append("Training, test and chain configurations from the same target: the "
                     "exact chain's rows are the check's negative control.")  # fmt: skip
    rows = table[table["chain"] == SETS[2]]
    for _, r in rows.iterrows():
        verdict = (
            "out of range"
            if bool(r["out_of_range"])
            else f"within range (would have flagged {100 * r['detectable']:.0f} % or more)"
        )
        text = (
            f"{r['backend']}: {100 * r['fraction']:.0f} % ± {100 * r['error']:.0f} % of its "
            f"surrogate chain beyond its calibrated range (in-distribution at most "
            f"{100 * r['limit']:.0f} %): {verdict}"
        )
        if r["frozen error"]:
            text += f"; frozen error of {observable} {r['frozen error']}"
        lines.append(text + ".")
    return "\n\n".join(lines)


def plot_shift(scores: Mapping[str, Mapping[str, np.ndarray]]):
    """One panel per backend: the distributions of log10 score on the test split, the exact
    chain and the surrogate chain, with the calibrated range (the test split's largest).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores = {b: {s: rng.lognormal(size=(2, 30)) for s in SETS} for b in ("a", "b")}
    >>> [ax.get_title() for ax in plot_shift(scores).axes]
    ['a', 'b']
    """
    from matplotlib.figure import Figure

    names: Sequence[str] = list(scores)
    fig = Figure(figsize=(3.4 * max(len(names), 1), 3.0), layout="constrained")
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=False):
        logs = {s: np.log10(np.maximum(np.ravel(scores[name][s]), 1e-30)) for s in SETS}
        finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()])
        bins = np.linspace(finite.min(), finite.max() + 1e-9, 40) if finite.size else 10
        for k, s in enumerate(SETS):
            ax.hist(logs[s][np.isfinite(logs[s])], bins=bins, density=True, histtype="step",
                    color=f"C{k}", label=s)  # fmt: skip
        ax.axvline(logs[SETS[0]].max(), color="k", ls="--", lw=0.8, label="calibrated range")
        ax.set_title(name)
        ax.set_xlabel("log10 epistemic variance")
    axes[0].set_ylabel("density")
    if names:
        axes[-1].legend(fontsize=7)
    return fig
