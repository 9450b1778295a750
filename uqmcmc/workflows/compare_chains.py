"""The compare workflow's chain runs: the exact-ΔS MALA control (which tunes the step size every
surrogate run shares), the naive/penalised pair of each estimator mode, and one chain set per
fixed member or posterior draw, and the delayed-acceptance control of each backend.

The runs of the bias decomposition are COUPLED: the exact-ΔS chain at the tuned step size, both
modes of every backend, their naive and penalised variants, the positive control and the noise
sweep all step with one key (common random numbers, :func:`~uqmcmc.mcmc.batched` with
``common_key=True``) from the same starts, and record ``coupling`` so that
:func:`~uqmcmc.diagnostics.paired_differences` takes the error of their difference draw by
draw. Each run alone samples what it samples without the coupling."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc import _arviz
from uqmcmc.mcmc import (
    EnergyDelta,
    ExactDelta,
    GradientDelta,
    NoisyOracle,
    Switch,
    as_penalty,
    batched,
    delayed_acceptance,
    mala,
    run_chains,
    split_batched,
)
from uqmcmc.uq.fixed import FixedDraw, draw_ids
from uqmcmc.workflows.compare_config import CompareConfig

#: Acceptance rule of the penalty chains for each estimator mode.
PENALTY = {"mean": "ceperley-dewing", "draws": "ceperley-dewing-estimated"}


@dataclass(frozen=True)
class ChainPlan:
    """What every chain run of one compare workflow shares: the settings, the target, the
    MALA step size (tuned by the exact control), the equilibrated exact configurations the
    chains start from (``equilibrated``: ``(chain, draw, L, L)``; ``x0`` one per chain) and
    the driver's keyword arguments (``common``); ``progress`` is the driver's (e.g. a
    :class:`~uqmcmc.workflows.compare_progress.ChainMeter` every run advances).

    Examples
    --------
    >>> import numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> plan = ChainPlan(CompareConfig(), Phi4(4, 0.5, 1.0), 0.01, np.zeros((2, 3, 4, 4)))
    >>> plan.x0.shape, sorted(plan.common)
    ((2, 4, 4), ['progress', 'target', 'thin', 'warmup'])
    """

    cfg: CompareConfig
    target: Any
    step_size: float
    equilibrated: np.ndarray
    common: Mapping[str, Any] = field(default_factory=dict)
    progress: Any = False

    def __post_init__(self):
        if not self.common:
            common = dict(warmup=self.cfg.warmup, thin=self.cfg.thin, target=self.target,
                          progress=self.progress)  # fmt: skip
            object.__setattr__(self, "common", common)

    @property
    def x0(self) -> jax.Array:
        """One start per chain: the last equilibrated configuration of each exact chain."""
        return jnp.asarray(self.equilibrated[:, -1])

    def estimator(
        self,
        backend: Any,
        mode: str = "mean",
        n_draws: int | None = None,
        added_noise: Any = 0.0,
    ) -> EnergyDelta | GradientDelta:
        """The ΔS estimator of ``backend`` for the settings' surrogate
        (:attr:`~uqmcmc.workflows.CompareConfig.surrogate_kind`): ``GradientDelta`` (the
        quadrature ``cfg.rule`` of ``grad S``) or ``EnergyDelta`` (energy differences).

        Examples
        --------
        >>> import numpy as np
        >>> from uqmcmc.targets import Phi4
        >>> from uqmcmc.uq.exact import ExactSurrogate
        >>> plan = ChainPlan(CompareConfig(surrogate="energy"), Phi4(4, 0.5, 1.0), 0.01,
        ...                  np.zeros((2, 3, 4, 4)))
        >>> type(plan.estimator(ExactSurrogate(Phi4(4, 0.5, 1.0), "action"))).__name__
        'EnergyDelta'
        """
        if self.cfg.surrogate_kind == "gradient":
            return GradientDelta(backend, self.cfg.rule, mode, n_draws, added_noise=added_noise)
        return EnergyDelta(backend, mode, n_draws, added_noise=added_noise)


def per_draw_algorithm(
    backend: Any, draws: Any, make_algorithm: Callable[[Any], blackjax.base.SamplingAlgorithm]
) -> blackjax.base.SamplingAlgorithm:
    """One algorithm stepping ``K`` chains at once, chain ``k`` on fixed draw ``draws[k]``.

    :func:`~uqmcmc.mcmc.batched` over the draws, variant ``k`` being ``make_algorithm(
    FixedDraw(backend, draws[k]))`` (:class:`~uqmcmc.uq.fixed.FixedDraw`): a position is
    ``(K, *shape)``, one compiled step; :func:`~uqmcmc.mcmc.split_batched` splits the run.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from uqmcmc.mcmc import GradientDelta, mala
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.workflows.training_data import make_dataset
    >>> data = make_dataset(Phi4(4, 0.5, 1.0), jax.random.key(0), 12, n_test=4)
    >>> from uqmcmc.uq import registry
    >>> settings = registry.BackendSettings(epochs=1, n_members=2)
    >>> ens = registry.fit("ensemble", settings, data.train.x, data.train.grad, jax.random.key(1))
    >>> alg = per_draw_algorithm(ens, jnp.arange(2), lambda b: mala(GradientDelta(b), 0.01))
    >>> state = alg.init(jnp.zeros((2, 4, 4)))  # chain k on member k
    >>> state, info = alg.step(jax.random.key(2), state)
    >>> state.position.shape, info.acceptance_rate.shape
    ((2, 4, 4), (2,))
    """
    return batched(draws, lambda draw: make_algorithm(FixedDraw(backend, draw)))


def exact_mala(plan: ChainPlan, key: jax.Array) -> tuple[Any, float]:
    """Exact-ΔS MALA (the control run) from ``plan.x0``; tunes the step size shared by every
    surrogate run (towards acceptance 0.6) unless the settings fix it. Returns the run and the
    step size.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.5, 1.0)
    >>> cfg = CompareConfig(L=4, beta=0.5, steps=20, warmup=10, thin=1, n_fixed=2,
    ...                     member_chains=2, member_steps=20, n_draws=4)
    >>> start = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 4, 4))) * 0.5
    >>> control, eps = exact_mala(ChainPlan(cfg, target, 0.0, start), jax.random.key(1))
    >>> control.posterior["sd"].shape, eps > 0
    ((2, 20), True)
    """
    cfg = plan.cfg
    est = ExactDelta(plan.target)
    attrs = {**est.params, "acceptance": "none", "kernel": "mala", "seed": cfg.seed}
    if cfg.step_size is not None:
        idata = run_chains(
            mala(est, cfg.step_size, acceptance="none"), key, plan.x0, cfg.steps,
            record_positions=True, attrs=attrs, **plan.common,
        )  # fmt: skip
        return idata, cfg.step_size
    idata = run_chains(
        lambda s: mala(est, s, acceptance="none"), key, plan.x0, cfg.steps, step_size=0.01,
        target_acceptance=0.6, record_positions=True, attrs=attrs, **plan.common,
    )  # fmt: skip
    return idata, float(_arviz.attrs(idata)["step_size"])


def coupling_tag(cfg: CompareConfig) -> str:
    """The ``coupling`` attribute of a compare run's coupled chains (one per seed).

    Examples
    --------
    >>> coupling_tag(CompareConfig(seed=3))
    'compare-seed-3'
    """
    return f"compare-seed-{cfg.seed}"


#: The run name of :func:`exact_coupled` in a compare result.
EXACT_COUPLED = "exact-mala/coupled"


def exact_coupled(plan: ChainPlan, key: jax.Array) -> Any:
    """Exact-ΔS MALA at the tuned step size with the coupled runs' key: the reference of the
    frozen error (the surrogate's mean-mode chain against it, draw by draw).

    Examples
    --------
    >>> import jax, numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> cfg = CompareConfig(L=4, beta=0.5, steps=20, warmup=10, thin=1)
    >>> start = np.zeros((2, 3, 4, 4))
    >>> run = exact_coupled(ChainPlan(cfg, Phi4(4, 0.5, 1.0), 0.02, start), jax.random.key(0))
    >>> run.posterior.attrs["coupling"], run.posterior["sd"].shape
    ('compare-seed-0', (2, 20))
    """
    est = ExactDelta(plan.target)
    attrs = {**est.params, "acceptance": "none", "kernel": "mala", "seed": plan.cfg.seed,
             "coupling": coupling_tag(plan.cfg)}  # fmt: skip
    return run_chains(
        mala(est, plan.step_size, acceptance="none"), key, plan.x0, plan.cfg.steps,
        record_positions=True, attrs=attrs, **plan.common,
    )  # fmt: skip


def rule_pair(plan: ChainPlan, name: str, backend: Any, mode: str, key: jax.Array) -> list:
    """The naive and the Ceperley-Dewing chains of one estimator mode of ``backend``, run side
    by side (one compiled step, :class:`~uqmcmc.mcmc.Switch`) and coupled (one key); each chain
    pair starts from the same equilibrated configuration. Returns ``[naive, penalised]``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.5, 1.0)
    >>> cfg = CompareConfig(L=4, beta=0.5, steps=20, warmup=10, thin=1, n_fixed=2,
    ...                     member_chains=2, member_steps=20, n_draws=4)
    >>> start = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 4, 4))) * 0.5
    >>> from uqmcmc.uq.exact import ExactSurrogate
    >>> plan = ChainPlan(cfg, target, 0.02, start)
    >>> naive, cd = rule_pair(plan, "exact", ExactSurrogate(target), "draws", jax.random.key(2))
    >>> naive.posterior.attrs["acceptance"], cd.posterior.attrs["acceptance"]
    ('none', 'ceperley-dewing-estimated')
    """
    cfg = plan.cfg
    n_draws = cfg.n_draws if mode == "draws" else None
    est = plan.estimator(backend, mode, n_draws)
    return _naive_and_penalised(plan, est, PENALTY[mode], {"backend": name, "mode": mode}, key)


def oracle_pair(plan: ChainPlan, key: jax.Array) -> list:
    """The positive control: exact ΔS plus Gaussian noise of standard deviation
    ``cfg.oracle_sigma`` estimated from ``cfg.oracle_draws`` draws
    (:class:`~uqmcmc.mcmc.NoisyOracle`), naive and with the estimated-variance Ceperley-Dewing
    penalty, side by side. The naive chain is heated by a known amount (the bias of ``sd`` grows
    like ``sigma**2``), so a design that cannot flag it cannot see a surrogate's bias either;
    the penalised chain samples the exact distribution. Returns ``[naive, penalised]``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> cfg = CompareConfig(L=4, beta=0.5, steps=20, warmup=10, thin=1, oracle_sigma=1.0)
    >>> start = np.zeros((2, 3, 4, 4))
    >>> naive, cd = oracle_pair(ChainPlan(cfg, Phi4(4, 0.5, 1.0), 0.02, start), jax.random.key(0))
    >>> naive.posterior.attrs["estimator"], float(cd.sample_stats["delta_var"].mean()) > 0.1
    ('NoisyOracle', True)
    """
    cfg = plan.cfg
    est = NoisyOracle(plan.target, sigma=cfg.oracle_sigma, n_draws=cfg.oracle_draws)
    attrs = {"backend": "oracle", "mode": "draws", "control": "positive"}
    return _naive_and_penalised(plan, est, "ceperley-dewing-estimated", attrs, key)


def _naive_and_penalised(plan: ChainPlan, est: Any, rule: str, attrs: dict, key) -> list:
    """MALA chains of one estimator without and with penalty ``rule``, in one compiled program
    (``batched`` over ``Switch``, coupled), each pair from the same start;
    ``[naive, penalised]``."""
    penalty = as_penalty(rule, est.n_draws)
    alg = batched(
        jnp.array([False, True]),
        lambda on: mala(est, plan.step_size, acceptance=Switch(penalty, on)),
        common_key=True,
    )
    attrs = {**est.params, "kernel": "mala", **attrs, "seed": plan.cfg.seed,
             "coupling": coupling_tag(plan.cfg)}  # fmt: skip
    idata = run_chains(
        alg, key, jnp.stack([plan.x0, plan.x0], axis=1), plan.cfg.steps,
        record_positions=True, attrs=attrs, **plan.common,
    )  # fmt: skip
    return split_batched(idata, [{"acceptance": "none"}, {"acceptance": rule}])


def noise_sweep(plan: ChainPlan, name: str, backend: Any, key: jax.Array) -> dict[str, Any]:
    """Draws-mode chains of ``backend`` with controlled extra noise: for each level ``s`` of
    ``cfg.noise_sweep``, Gaussian noise of standard deviation ``s * sqrt(n_draws)`` is added to
    each joint draw's ΔS (``added_noise`` of :class:`~uqmcmc.mcmc.GradientDelta`), so the
    estimate's standard deviation grows by ``s``; naive and with the estimated-variance
    penalty. Every level and rule runs side by side in one compiled program, each chain from
    the same start as the other runs, coupled with them (one key). Returns
    ``{"<name>/noise<s>/<none|cd>": run}``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.5, 1.0)
    >>> cfg = CompareConfig(L=4, beta=0.5, steps=20, warmup=10, thin=1, n_draws=4,
    ...                     noise_sweep=(0.5, 2.0))
    >>> from uqmcmc.uq.exact import ExactSurrogate
    >>> start = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 4, 4))) * 0.5
    >>> runs = noise_sweep(ChainPlan(cfg, target, 0.02, start), "exact", ExactSurrogate(target),
    ...                    jax.random.key(1))
    >>> list(runs)
    ['exact/noise0.5/none', 'exact/noise0.5/cd', 'exact/noise2/none', 'exact/noise2/cd']
    >>> sd = [float(np.sqrt(r.sample_stats["delta_var"].mean())) for r in runs.values()]
    >>> levels = (0.5, 0.5, 2.0, 2.0)  # sd of the estimate: the level (40 steps each, +-13 %)
    >>> all(abs(s / level - 1) < 0.4 for s, level in zip(sd, levels))
    True
    """
    cfg = plan.cfg
    levels = tuple(cfg.noise_sweep)
    penalty = as_penalty(PENALTY["draws"], cfg.n_draws)
    added = jnp.repeat(jnp.asarray(levels, dtype=float) * math.sqrt(cfg.n_draws), 2)
    on = jnp.tile(jnp.array([False, True]), len(levels))

    def make(params):
        noise, penalised = params
        est = plan.estimator(backend, "draws", cfg.n_draws, added_noise=noise)
        return mala(est, plan.step_size, acceptance=Switch(penalty, penalised))

    est = plan.estimator(backend, "draws", cfg.n_draws)
    attrs = {**est.params, "kernel": "mala", "backend": name, "mode": "draws", "seed": cfg.seed,
             "coupling": coupling_tag(cfg)}  # fmt: skip
    x0 = jnp.repeat(plan.x0[:, None], 2 * len(levels), axis=1)
    alg = batched((added, on), make, common_key=True)
    idata = run_chains(alg, key, x0, cfg.steps, attrs=attrs, **plan.common)
    names, variants = [], []
    for level in levels:
        for rule, short in (("none", "none"), (PENALTY["draws"], "cd")):
            names.append(f"{name}/noise{level:g}/{short}")
            variants.append({"acceptance": rule, "noise_level": level,
                             "added_noise": level * math.sqrt(cfg.n_draws)})  # fmt: skip
    return dict(zip(names, split_batched(idata, variants), strict=True))


def member_runs(plan: ChainPlan, name: str, backend: Any, key: jax.Array, index: int) -> list:
    """One chain set per fixed member / posterior draw, all drawn in one vmapped run, each
    chain started from a random configuration of the exact chain (``plan.equilibrated``).
    ``index`` (the backend's position in the run) selects the keys from ``key``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.5, 1.0)
    >>> cfg = CompareConfig(L=4, beta=0.5, steps=20, warmup=10, thin=1, n_fixed=2,
    ...                     member_chains=2, member_steps=20, n_draws=4)
    >>> start = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 4, 4))) * 0.5
    >>> from uqmcmc.uq.exact import ExactSurrogate
    >>> sets = member_runs(ChainPlan(cfg, target, 0.02, start), "exact", ExactSurrogate(target),
    ...                    jax.random.key(3), 0)
    >>> len(sets), sets[0].posterior["abs_m"].shape  # n_fixed sets of member_chains chains
    (2, (2, 20))
    """
    cfg, target = plan.cfg, plan.target
    k_draw, k_pick, k_run = (jax.random.fold_in(key, index + o) for o in (0, 100, 200))
    draws = draw_ids(backend, k_draw, cfg.n_fixed)
    k = int(jax.tree.leaves(draws)[0].shape[0])
    alg = per_draw_algorithm(
        backend, draws, lambda b: mala(plan.estimator(b), plan.step_size, "none")
    )
    flat = plan.equilibrated.reshape(-1, *target.shape)
    pick = jax.random.choice(
        k_pick, flat.shape[0], (cfg.member_chains, k),
        replace=flat.shape[0] < cfg.member_chains * k,
    )  # fmt: skip
    idata = run_chains(alg, k_run, jnp.asarray(flat)[pick], cfg.member_steps, **plan.common)
    attrs = {"backend": name, "mode": "fixed-draw", "acceptance": "none"}
    return split_batched(idata, [{**attrs, "draw": d} for d in range(k)])


#: The delayed-acceptance control's step is tuned during warm-up to this probability of a move
#: (a surrogate screen that moves and an exact correction that accepts). A rejected screen costs
#: no exact evaluation, so a longer step than exact MALA's (tuned to 0.6) buys more effective
#: samples per exact evaluation, until the chain sticks: at the default phi^4 point the move
#: rates 0.6, 0.19 and 0.04 gave 3.1x, 5.6x and 2.7x fewer exact evaluations per effective
#: sample of sd than exact MALA (docs/report.md).
DELAYED_MOVE_RATE = 0.2


def delayed_run(plan: ChainPlan, name: str, backend: Any, key: jax.Array, index: int) -> Any:
    """The delayed-acceptance control of ``backend``: MALA screened by the backend's mean and
    corrected with the exact action, so the chain is exact whatever the surrogate: a third
    control, and the cost of exactness in exact evaluations.

    Each step is a sub-chain of ``cfg.delayed_substeps`` surrogate steps
    (:func:`uqmcmc.mcmc.delayed_acceptance`): one step with a gradient surrogate
    (``GradientDelta`` in ``mean`` mode, Christen and Fox's general second stage), any number
    with an energy surrogate (``EnergyDelta``, the short correction). One step starts at twice
    the shared step and is tuned in warm-up to :data:`DELAYED_MOVE_RATE` (a rejected screen
    costs no exact evaluation); a longer sub-chain runs at the shared step (it moves on almost
    every step, so a move rate says little) and keeps every ``thin // k``-th step (at least
    every one): ``k`` sub-steps already separate its draws, and a thinned chain's ESS could
    not exceed its number of draws; fixed settings' ``step_size`` wins over both.
    ``cfg.delayed_chains`` x ``cfg.delayed_steps`` from the first of ``plan.x0``; ``index``
    (the backend's position in the run) selects its key from ``key``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.uq.exact import ExactSurrogate
    >>> target = Phi4(4, 0.5, 1.0)
    >>> cfg = CompareConfig(L=4, beta=0.5, delayed_chains=2, delayed_steps=20, warmup=10,
    ...                     thin=1)
    >>> start = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 4, 4))) * 0.5
    >>> run = delayed_run(ChainPlan(cfg, target, 0.02, start), "exact", ExactSurrogate(target),
    ...                   jax.random.key(3), 0)
    >>> run.posterior.attrs["acceptance"], run.sample_stats["exact_evaluations"].shape
    ('delayed', (2, 20))
    >>> sorted(set(run.sample_stats) & {"delta_var", "step_size"})
    ['delta_var', 'step_size']
    """
    cfg = plan.cfg
    est = plan.estimator(backend)
    k = cfg.delayed_substeps
    attrs = {**est.params, "kernel": "mala", "backend": name, "mode": "mean",
             "acceptance": "delayed", "substeps": k, "seed": cfg.seed}  # fmt: skip
    if cfg.step_size is not None or k > 1:
        step = plan.step_size if cfg.step_size is None else cfg.step_size
        alg, tune = delayed_acceptance(plan.target, est, step, substeps=k), {}
    else:
        alg = lambda s: delayed_acceptance(plan.target, est, s, substeps=1)  # noqa: E731
        tune = {"step_size": 2 * plan.step_size, "target_acceptance": DELAYED_MOVE_RATE}
        attrs["target_move_rate"] = DELAYED_MOVE_RATE
    common = {**plan.common, "thin": max(1, cfg.thin // k)}
    return run_chains(
        alg, jax.random.fold_in(key, index + 300), plan.x0[: cfg.delayed_chains],
        cfg.delayed_steps,
        record_positions=True, attrs=attrs, **tune, **common,
    )  # fmt: skip
