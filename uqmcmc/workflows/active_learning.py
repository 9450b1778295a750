"""Uncertainty-driven active learning: label where the surrogate chain is unsure, refit, repeat.

The loop (issue 18, item 3), round by round:

1. **Calibrate.** The threshold is the ``quantile`` (default 0.95) of the per-configuration
   score on the current TRAINING inputs, where a configuration's score is the mean over sites
   of the backend's epistemic variance of ``grad S``
   (``predict_mean_var(x, epistemic_only=True)``): "as unsure as the least familiar 5% of what
   the backend was trained on". It is recalibrated after every refit (a refit changes the
   variance scale). A fixed ``threshold`` (e.g. ``inf``: never label) skips the calibration.
2. **Run.** Surrogate MALA chains, ``mala(GradientDelta(backend, mode="mean"), step_size)``
   (no penalty by default, as the compare workflow's ``mean`` chain), start from the exact
   reference chain's final fields; every recorded position is scored.
3. **Measure.** The frozen error (the chain's ``<|M|>`` and ``<sd>`` minus the exact reference
   chain's, with the combined MCSE, :func:`~uqmcmc.diagnostics.compare_to_exact`), the
   surrogate's relative RMSE of ``grad S`` on a held-out test split, and, optionally, a
   delayed-acceptance chain (:func:`uqmcmc.mcmc.delayed_acceptance`, ``k = 1``, exact for any
   surrogate) with its exact evaluations per effective sample.
4. **Select and label.** Positions scoring above the threshold are flagged; duplicates (a
   rejected MALA step repeats its position) are dropped and at most ``max_new`` of the rest,
   evenly spaced along the chains (:func:`~uqmcmc.uq.acquisition.select_uncertain`), are
   labelled with the exact ``target.grad`` and ``target.action`` and added to the training
   set.
5. **Refit.** ``"last_layer"`` is warm-started (its network trained further from the current
   weights by :func:`uqmcmc.uq.training.train`, then the Bayesian last layer refitted on the
   whole set); every other backend is refitted from scratch (the registry's ``fit`` has no
   warm start: the deep ensemble's members would need the private training loop). The
   ``refit`` column says which happened.

Row ``r`` of the table is the surrogate after ``r`` rounds of labelling: ``rounds + 1`` rows,
the last one measured after the final refit (it labels nothing).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from uqmcmc import _arviz
from uqmcmc._validation import positive, positive_int
from uqmcmc.diagnostics.exact_comparison import compare_to_exact
from uqmcmc.mcmc import GradientDelta, checkerboard, delayed_acceptance, mala, run_chains
from uqmcmc.targets.base import check_target
from uqmcmc.uq import registry
from uqmcmc.uq.acquisition import calibrate_threshold, select_uncertain, uncertainty_scores
from uqmcmc.uq.data import Dataset, Split
from uqmcmc.workflows.training_data import make_dataset

Array = jax.Array

__all__ = [
    "ActiveLearningConfig",
    "ActiveLearningResult",
    "run_active_learning",
]

#: Observables whose frozen error the table reports.
FROZEN_OBSERVABLES = ("abs_m", "sd")


@dataclass(frozen=True)
class ActiveLearningConfig:
    """Settings of :func:`run_active_learning`.

    Parameters
    ----------
    rounds
        Rounds of labelling and refitting (the table has ``rounds + 1`` rows).
    chains, steps, warmup, thin
        The surrogate MALA chains of every round: number, recorded steps per chain (every
        ``thin``-th kept and scored), discarded steps.
    step_size
        The Langevin step of the surrogate (and delayed-acceptance) chains; ``None`` tunes it
        towards acceptance 0.6 during each round's warm-up.
    acceptance
        The surrogate chain's penalty (``"none"``: the plain mean-mode chain whose frozen error
        the compare workflow reports).
    quantile
        The threshold's quantile of the training inputs' scores, in ``[0, 1]``.
    threshold
        A fixed threshold instead (``math.inf``: nothing is ever flagged); ``None`` calibrates.
    max_new
        At most this many new configurations per round.
    backend, settings
        The registry backend (:mod:`uqmcmc.uq.registry`) and its settings; the defaults (a
        4-member ensemble, 30 epochs) are small, for a quick loop.
    warm_start
        Warm-start the refit where the backend allows it cheaply (``"last_layer"``); other
        backends are always refitted from scratch.
    warm_epochs
        Epochs of a warm-started refit (default: ``settings.epochs``).
    n_initial, n_test
        Sizes of the default initial training set and of the held-out test split, both drawn
        by :func:`~uqmcmc.workflows.training_data.make_dataset` from the exact target.
    reference_steps, reference_warmup
        The exact reference chains (checkerboard sweeps, ``chains`` of them): recorded and
        discarded sweeps.
    delayed
        Also run a delayed-acceptance chain per round (``k = 1``, the general correction for a
        gradient surrogate) and report its exact evaluations per effective sample, next to
        exact MALA's (one run with the same chains, steps and step size; 2 exact calls per
        step: the action and the gradient).
    seed
        Integer seed of everything random.

    Examples
    --------
    >>> cfg = ActiveLearningConfig(rounds=2, backend="last_layer")
    >>> cfg.quantile, cfg.max_new, cfg.settings.n_members
    (0.95, 20, 4)
    >>> ActiveLearningConfig(quantile=1.5)
    Traceback (most recent call last):
    ...
    ValueError: quantile must lie in [0, 1], got 1.5
    """

    rounds: int = 3
    chains: int = 4
    steps: int = 1000
    warmup: int = 200
    thin: int = 1
    step_size: float | None = 0.02
    acceptance: str = "none"
    quantile: float = 0.95
    threshold: float | None = None
    max_new: int = 20
    backend: str = "ensemble"
    settings: registry.BackendSettings = field(
        default_factory=lambda: registry.BackendSettings(n_members=4, epochs=30)
    )
    warm_start: bool = True
    warm_epochs: int | None = None
    n_initial: int = 20
    n_test: int = 20
    reference_steps: int = 2000
    reference_warmup: int = 200
    delayed: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        positive_int("rounds", self.rounds, minimum=0)
        for name in ("chains", "steps", "thin", "max_new", "reference_steps"):
            positive_int(name, getattr(self, name))
        for name in ("warmup", "reference_warmup"):
            positive_int(name, getattr(self, name), minimum=0)
        positive_int("n_initial", self.n_initial, minimum=2)
        positive_int("n_test", self.n_test, minimum=2)
        if self.warm_epochs is not None:
            positive_int("warm_epochs", self.warm_epochs)
        if self.step_size is not None:
            positive("step_size", self.step_size)
        if not 0.0 <= float(self.quantile) <= 1.0:
            raise ValueError(f"quantile must lie in [0, 1], got {self.quantile!r}")
        if self.threshold is not None and (
            math.isnan(float(self.threshold)) or float(self.threshold) < 0
        ):
            raise ValueError(f"threshold must be >= 0 (or inf), got {self.threshold!r}")
        if not isinstance(self.settings, registry.BackendSettings):
            raise ValueError(f"settings must be a BackendSettings, got {self.settings!r}")
        registry.get(self.backend)  # an unknown name fails here, not after the first chains


@dataclass
class ActiveLearningResult:
    """What :func:`run_active_learning` returns.

    Attributes
    ----------
    table
        One row per round ``r = 0 .. rounds`` (the surrogate after ``r`` rounds of labelling):
        ``round``; ``n_train`` (training configurations the chain's surrogate was fitted on);
        ``refit`` (how that surrogate was fitted: ``initial``, ``warm``, ``scratch``, or
        ``unchanged`` when the previous round added nothing); ``threshold``; ``flagged_steps``
        and ``flagged_fraction`` (recorded positions scoring above the threshold);
        ``score_median`` (median score along the chain); ``n_new`` (configurations labelled
        this round); ``exact_labels`` (exact ``grad S`` + ``S`` evaluations spent on training
        labels so far, this round's included; the test split and the diagnostic chains are
        not counted); ``acceptance`` and ``step_size`` of the surrogate chain;
        ``frozen_<obs>``, ``frozen_<obs>_err``, ``frozen_<obs>_z`` for ``abs_m`` and ``sd``
        (surrogate chain minus exact reference, combined MCSE, z-score); ``test_rel_error``
        (relative RMSE of the predictive mean of ``grad S`` on the test split); with
        ``delayed``: ``da_exact_evals`` (exact action calls of the delayed-acceptance chain),
        ``da_acceptance``, ``da_evals_per_ess_<obs>`` and ``da_ratio_<obs>`` (over exact
        MALA's, below 1: cheaper).
    config
        The :class:`ActiveLearningConfig`.
    train
        The final training set (a :class:`~uqmcmc.uq.data.Split`).
    test
        The held-out test split.
    backend
        The final fitted backend.
    baseline
        Exact MALA's exact evaluations per effective sample, ``{"abs_m": ..., "sd": ...}``
        (empty without ``delayed``).

    Examples
    --------
    A result is normally made by :func:`run_active_learning`; here one by hand, to plot:

    >>> import pandas as pd
    >>> table = pd.DataFrame({"round": [0, 1], "frozen_sd": [0.08, 0.01],
    ...                       "frozen_sd_err": [0.01, 0.01], "frozen_abs_m": [0.05, 0.0],
    ...                       "frozen_abs_m_err": [0.02, 0.02],
    ...                       "test_rel_error": [0.3, 0.1], "flagged_fraction": [0.4, 0.05]})
    >>> result = ActiveLearningResult(table, ActiveLearningConfig(rounds=1), None, None, None)
    >>> len(result.plot_rounds().axes)
    2
    """

    table: pd.DataFrame
    config: ActiveLearningConfig
    train: Split | None
    test: Split | None
    backend: Any
    baseline: dict = field(default_factory=dict)

    def plot_rounds(self, fig: Any = None) -> Any:
        """Frozen error (``sd`` and ``|M|``, +- 2 errors) and the test relative error and
        flagged fraction against the round; returns the matplotlib ``Figure``.

        Examples
        --------
        >>> import pandas as pd
        >>> table = pd.DataFrame({"round": [0], "frozen_sd": [0.1], "frozen_sd_err": [0.01],
        ...                       "test_rel_error": [0.2]})
        >>> result = ActiveLearningResult(table, ActiveLearningConfig(), None, None, None)
        >>> [ax.get_xlabel() for ax in result.plot_rounds().axes]
        ['round', 'round']
        """
        from matplotlib.figure import Figure

        t = self.table
        if fig is None:
            fig = Figure(figsize=(9.0, 3.6), layout="constrained")
        left, right = fig.subplots(1, 2)
        for i, obs in enumerate(FROZEN_OBSERVABLES):
            if f"frozen_{obs}" not in t:
                continue
            label = {"abs_m": "|M|", "sd": "sd"}[obs]
            left.errorbar(
                t["round"] + 0.06 * (i - 0.5), t[f"frozen_{obs}"], yerr=2 * t[f"frozen_{obs}_err"],
                marker="o", capsize=3, label=f"{label} (surrogate - exact, +-2 err)",
            )  # fmt: skip
        left.axhline(0.0, color="0.5", lw=0.8)
        left.set_xlabel("round")
        left.set_ylabel("frozen error")
        left.legend(fontsize="small")
        right.plot(t["round"], t["test_rel_error"], marker="o", label="test rel. error of grad S")
        if "flagged_fraction" in t:
            right.plot(t["round"], t["flagged_fraction"], marker="s", label="flagged fraction")
        right.set_xlabel("round")
        right.set_yscale("log")
        right.legend(fontsize="small")
        return fig


def _label(target: Any, x: Array) -> Split:
    x = jnp.asarray(x)
    return Split(x, target.grad(x), target.action(x))


def _concat(a: Split, b: Split) -> Split:
    return Split(*(jnp.concatenate([u, v]) for u, v in zip(a, b, strict=True)))


def _rel_error(backend: Any, test: Split) -> float:
    mean = np.asarray(backend.predict_mean_var(test.x)[0], dtype=float)
    y = np.asarray(test.grad, dtype=float)
    return float(np.sqrt(np.sum((mean - y) ** 2) / np.sum(y**2)))


def _fit(cfg: ActiveLearningConfig, train: Split, key: Array, previous: Any) -> tuple[Any, str]:
    """Fit the backend on ``train``: warm-started from ``previous`` when possible."""
    if previous is not None and cfg.warm_start and _warm_startable(previous):
        from uqmcmc.uq.training import train as train_net

        kwargs = dict(registry.get(cfg.backend).fit_settings(cfg.settings))
        if cfg.warm_epochs is not None:
            kwargs["epochs"] = cfg.warm_epochs
        k_net, k_fit = jax.random.split(key)
        model, _ = train_net(previous.model, train.x, train.grad, key=k_net, **kwargs)
        backend = registry.build(cfg.backend, cfg.settings)
        return backend.fit(train.x, train.grad, key=k_fit, model=model), "warm"
    backend = registry.fit(cfg.backend, cfg.settings, train.x, train.grad, key)
    return backend, "initial" if previous is None else "scratch"


def _warm_startable(backend: Any) -> bool:
    from uqmcmc.uq.last_layer import BayesianLastLayer

    return isinstance(backend, BayesianLastLayer) and backend.model is not None


def _calls_per_ess(idata: Any, calls: float) -> dict[str, float]:
    post = _arviz.group(idata, "posterior")
    return {obs: calls / _arviz.ess(np.asarray(post[obs], float)) for obs in FROZEN_OBSERVABLES}


def _run(algorithm: Any, key: Array, x0: Array, cfg: ActiveLearningConfig, target: Any, **kw):
    with warnings.catch_warnings():  # ArviZ warns when chains outnumber draws (tiny runs)
        warnings.filterwarnings("ignore", "More chains", UserWarning)
        return run_chains(
            algorithm, key, x0, cfg.steps, warmup=cfg.warmup, thin=cfg.thin, target=target,
            progress=False, num_chunks=1, **kw,
        )  # fmt: skip


def _initial_sets(target, cfg, key, initial, test) -> tuple[Split, Split]:
    k_train, k_test = jax.random.split(key)
    if isinstance(initial, Dataset):
        initial = initial.train
    if initial is not None and not isinstance(initial, Split):
        raise ValueError(f"initial must be a Split or a Dataset, got {type(initial).__name__}")
    if initial is None and test is None:
        data = make_dataset(target, k_train, cfg.n_initial + cfg.n_test, n_test=cfg.n_test)
        return data.train, data.test
    if initial is None:
        initial = make_dataset(target, k_train, cfg.n_initial + 2, n_test=2).train
    if test is None:
        test = make_dataset(target, k_test, cfg.n_test + 1, n_test=cfg.n_test).test
    return initial, test


def run_active_learning(
    target: Any,
    config: ActiveLearningConfig | None = None,
    *,
    initial: Split | Dataset | None = None,
    test: Split | None = None,
) -> ActiveLearningResult:
    """Uncertainty-driven active learning of a ``grad S`` surrogate (see the module docstring).

    Parameters
    ----------
    target
        The exact system (e.g. :class:`uqmcmc.targets.Phi4`): ``action``, ``grad``,
        ``observables`` (with ``abs_m`` and ``sd``) and a ``shape``.
    config
        An :class:`ActiveLearningConfig` (default settings if ``None``).
    initial
        The starting training set (a :class:`~uqmcmc.uq.data.Split`, or a
        :class:`~uqmcmc.uq.data.Dataset` whose ``train`` split is used; e.g. configurations
        from another coupling, for a domain shift). Default: ``config.n_initial``
        configurations from :func:`~uqmcmc.workflows.training_data.make_dataset`.
    test
        The held-out test split (default: ``config.n_test`` configurations of the target from
        :func:`~uqmcmc.workflows.training_data.make_dataset`).

    Returns
    -------
    ActiveLearningResult
        The per-round table (its attrs hold the settings), the final training set and backend.

    Examples
    --------
    With a registered registry backend, e.g. ``ActiveLearningConfig(backend="last_layer")``,
    every round trains a network. To keep this example short, a toy backend: the exact
    ``grad S``, with a variance of 0.01 plus the mean squared distance to the nearest training
    input (so the calibrated threshold is 0.01, and every new configuration is flagged).

    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.uq.base import UQBackend
    >>> from uqmcmc.uq.data import Split
    >>> from uqmcmc.uq.registry import BackendSpec, register, unregister
    >>> target = Phi4(4, 0.5, 1.0)
    >>> class Nearest(UQBackend):
    ...     name = "nearest"
    ...     def fit(self, x, y, *, key):
    ...         self.x = x.reshape(len(x), -1)
    ...         return self
    ...     def predict_mean_var(self, x, *, epistemic_only=False):
    ...         d = x.reshape(*x.shape[:-2], 1, 16) - self.x
    ...         d2 = 0.01 + jnp.min(jnp.mean(d**2, -1), -1)[..., None, None]
    ...         return target.grad(x), jnp.broadcast_to(d2, x.shape)
    ...     def predict_draws(self, key, x, n):
    ...         mean, var = self.predict_mean_var(x)
    ...         return mean + jnp.sqrt(var) * jax.random.normal(key, (n, *x.shape))
    ...     save = load = None
    >>> _ = register(BackendSpec("nearest", lambda settings: Nearest()))
    >>> def labelled(x):
    ...     return Split(x, target.grad(x), target.action(x))
    >>> start = labelled(0.1 * jax.random.normal(jax.random.key(0), (8, 4, 4)))  # far off
    >>> cfg = ActiveLearningConfig(
    ...     rounds=1, chains=2, steps=50, warmup=20, max_new=5, backend="nearest",
    ...     reference_steps=50, reference_warmup=20, delayed=False)
    >>> result = run_active_learning(target, cfg, initial=start, test=start)
    >>> t = result.table
    >>> t["n_train"].tolist(), t["n_new"].tolist(), t["exact_labels"].tolist()
    ([8, 13], [5, 0], [13, 13])
    >>> t["refit"].tolist(), round(float(t["threshold"][0]), 4), float(t["flagged_fraction"][0])
    (['initial', 'scratch'], 0.01, 1.0)
    >>> _ = unregister("nearest")
    """
    check_target(target)
    cfg = ActiveLearningConfig() if config is None else config
    if not isinstance(cfg, ActiveLearningConfig):
        raise ValueError(f"config must be an ActiveLearningConfig, got {type(cfg).__name__}")
    key = jax.random.key(int(cfg.seed))
    k_data, k_ref, k_base, k_rounds = jax.random.split(key, 4)
    train, test = _initial_sets(target, cfg, k_data, initial, test)
    labels = len(train)

    x_start = jnp.zeros((cfg.chains, *target.shape))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "More chains", UserWarning)
        reference, ref_state = run_chains(
            checkerboard(target, 1.0), k_ref, x_start, cfg.reference_steps,
            warmup=cfg.reference_warmup, target=target, progress=False, num_chunks=1,
            return_state=True,
        )  # fmt: skip
    x0 = ref_state.position

    baseline: dict[str, float] = {}
    if cfg.delayed and cfg.step_size is not None:
        from uqmcmc.mcmc import ExactDelta

        exact = _run(mala(ExactDelta(target), cfg.step_size, "none"), k_base, x0, cfg, target)
        baseline = _calls_per_ess(exact, 2.0 * cfg.steps * cfg.chains)

    backend, refit = _fit(cfg, train, jax.random.fold_in(k_rounds, 0), None)
    rows = []
    for r in range(cfg.rounds + 1):
        k_round = jax.random.fold_in(k_rounds, r + 1)
        k_chain, k_da, k_fit = jax.random.split(k_round, 3)
        threshold = (
            calibrate_threshold(backend, train.x, cfg.quantile)
            if cfg.threshold is None
            else float(cfg.threshold)
        )
        est = GradientDelta(backend, mode="mean")
        attrs = {"round": r, "backend": cfg.backend, "acceptance": cfg.acceptance}
        if cfg.step_size is None:
            run = _run(
                lambda s, est=est: mala(est, s, cfg.acceptance), k_chain, x0, cfg, target,
                step_size=0.01, target_acceptance=0.6, record_positions=True, attrs=attrs,
            )  # fmt: skip
            step_size = float(_arviz.attrs(run)["step_size"])
        else:
            step_size = cfg.step_size
            run = _run(
                mala(est, step_size, cfg.acceptance), k_chain, x0, cfg, target,
                record_positions=True, attrs=attrs,
            )  # fmt: skip
        post = _arviz.group(run, "posterior")
        positions = np.asarray(post["position"])
        scores = uncertainty_scores(backend, positions.reshape(-1, *target.shape))
        scores = scores.reshape(positions.shape[:2])
        last = r == cfg.rounds
        selected, flagged = select_uncertain(positions, scores, threshold, cfg.max_new)
        if last:
            selected = selected[:0]
        row: dict[str, Any] = {
            "round": r,
            "n_train": len(train),
            "refit": refit,
            "threshold": threshold,
            "flagged_steps": int(flagged.sum()),
            "flagged_fraction": float(flagged.mean()),
            "score_median": float(np.median(scores)),
            "n_new": int(selected.size),
            "exact_labels": labels + int(selected.size),
            "acceptance": float(np.mean(_arviz.group(run, "sample_stats")["acceptance_rate"])),
            "step_size": step_size,
        }
        frozen = compare_to_exact(
            {f"round {r}": run}, reference, observables=list(FROZEN_OBSERVABLES), distributions=[]
        ).set_index("observable")
        for obs in FROZEN_OBSERVABLES:
            row[f"frozen_{obs}"] = float(frozen.loc[obs, "bias"])
            row[f"frozen_{obs}_err"] = float(frozen.loc[obs, "bias_err"])
            row[f"frozen_{obs}_z"] = float(frozen.loc[obs, "z"])
        row["test_rel_error"] = _rel_error(backend, test)
        if cfg.delayed:
            da = _run(
                delayed_acceptance(target, GradientDelta(backend, mode="mean"), step_size),
                k_da, x0, cfg, target,
            )  # fmt: skip
            stats = _arviz.group(da, "sample_stats")
            calls = float(np.sum(stats["exact_evaluations"]))
            row["da_exact_evals"] = calls
            row["da_acceptance"] = float(np.mean(stats["acceptance_rate"]))
            for obs, value in _calls_per_ess(da, calls).items():
                row[f"da_evals_per_ess_{obs}"] = value
                row[f"da_ratio_{obs}"] = value / baseline[obs] if obs in baseline else math.nan
        rows.append(row)
        if last:
            break
        if selected.size:
            new = positions.reshape(-1, *target.shape)[selected]
            train = _concat(train, _label(target, new))
            labels += int(selected.size)
            backend, refit = _fit(cfg, train, k_fit, backend)
        else:
            refit = "unchanged"

    table = pd.DataFrame(rows)
    table.attrs.update(
        config=dataclasses.asdict(cfg),
        target=dict(getattr(target, "params", {}) or {}),
        threshold=(
            f"{cfg.quantile} quantile of the training inputs' mean epistemic variance of grad S"
            if cfg.threshold is None
            else "fixed"
        ),
        exact_labels="exact grad S + S evaluations on training labels (test split not counted)",
    )
    return ActiveLearningResult(table, cfg, train, test, backend, baseline)
