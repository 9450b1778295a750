"""The compare workflow: surrogate chains against the exact chain, as one library function.

``run_compare(CompareConfig())`` is what ``uqmcmc compare`` runs: exact reference chains, the
seed's training set, every UQ backend trained on ``grad S``, for each backend the MALA chains
{mean, draws} x {no penalty, Ceperley-Dewing} plus one chain set per fixed member / posterior
draw, the comparison with the exact chain, exact-identity checks, plots and a report folder.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from uqmcmc import _arviz, diagnostics
from uqmcmc._meta import versions
from uqmcmc._validation import positive, positive_int
from uqmcmc.mcmc import ExactDelta, GradientDelta, batched, mala, run_chains, split_batched
from uqmcmc.mcmc.acceptance import switch_penalty
from uqmcmc.pipeline import run_exact
from uqmcmc.targets import Phi4
from uqmcmc.uq.fixed import FixedDraw

#: Backend names accepted by ``--backends``, in report order.
BACKENDS = ("ensemble", "dropout", "last_layer", "bnn", "deep_kernel")

#: Acceptance rule of the penalty chains for each estimator mode.
PENALTY = {"mean": "ceperley-dewing", "draws": "ceperley-dewing-estimated"}


@dataclass
class CompareConfig:
    """Settings of a compare run (the defaults are the full run; :meth:`quick` the short one).

    Lattice and couplings: ``L``, ``beta``, ``g``. Chains: ``chains`` x ``steps`` MALA steps
    after ``warmup`` for every surrogate run, ``thin`` between kept draws; ``exact_steps``
    checkerboard sweeps for the reference. ``member_chains`` x ``member_steps`` for each of
    ``n_fixed`` fixed-draw chain sets per backend. Data: ``n_train`` + ``n_test``
    configurations (seed 1: 180 + 20). ``epochs`` of training (``svi_steps`` for the BNN,
    plus ``gp_steps`` of the deep kernel's GP fit); ``n_members`` ensemble members;
    ``n_draws`` joint draws per step in ``draws`` mode; ``rule`` the quadrature of ``grad S``.

    Examples
    --------
    >>> cfg = CompareConfig.quick_config(backends=["ensemble", "last_layer"])
    >>> cfg.validate().backends, cfg.L, cfg.quick
    (('ensemble', 'last_layer'), 6, True)
    >>> CompareConfig(backends=["gp"]).validate()
    Traceback (most recent call last):
    ...
    ValueError: backends must be a non-empty subset of (...), got ['gp']
    """

    L: int = 8
    beta: float = 0.7
    g: float = 1.0
    backends: tuple[str, ...] = BACKENDS
    chains: int = 16
    steps: int = 6000
    warmup: int = 1000
    thin: int = 5
    exact_steps: int = 20_000
    n_fixed: int = 8
    member_chains: int = 4
    member_steps: int = 3000
    n_train: int = 180
    n_test: int = 20
    epochs: int = 100
    svi_steps: int = 5000
    gp_steps: int = 1000
    n_members: int = 10
    n_draws: int = 8
    rule: str = "simpson"
    step_size: float | None = None
    identity_positions: int = 100
    seed: int = 0
    out: str = "uqmcmc-report"
    quick: bool = False

    @classmethod
    def quick_config(cls, **overrides) -> CompareConfig:
        """A short version (about 2.5 min on 2 cores; the tests run it with two backends): small
        lattice, short chains and training."""
        base = dict(
            L=6, beta=0.5, chains=8, steps=400, warmup=200, thin=2, exact_steps=4000,
            n_fixed=4, member_chains=2, member_steps=300, n_train=60, n_test=20, epochs=30,
            svi_steps=1500, gp_steps=300, n_members=4, n_draws=4, identity_positions=40,
            quick=True,
        )  # fmt: skip
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> CompareConfig:
        """Read settings from a TOML file (keys as the fields; ``quick = true`` starts from
        :meth:`quick_config`), then apply ``overrides``."""
        data = tomllib.loads(Path(path).read_text())
        data = data.get("compare", data)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
        data.update(overrides)
        if data.get("quick"):
            return cls.quick_config(**data)
        return cls(**data)

    def validate(self) -> CompareConfig:
        """Check every setting; returns ``self`` with ``backends`` as a tuple."""
        Phi4(self.L, self.beta, self.g)
        for name in ("chains", "steps", "thin", "exact_steps", "member_steps", "n_train",
                     "epochs", "svi_steps", "gp_steps", "n_members",
                     "identity_positions"):  # fmt: skip
            positive_int(name, getattr(self, name))
        positive_int("warmup", self.warmup, minimum=1)
        positive_int("n_fixed", self.n_fixed, minimum=2)
        positive_int("member_chains", self.member_chains, minimum=2)
        positive_int("n_test", self.n_test, minimum=2)
        positive_int("n_draws", self.n_draws, minimum=2)
        positive_int("seed", self.seed, minimum=0)
        if self.step_size is not None:
            positive("step_size", self.step_size)
        backends = tuple(self.backends)
        bad = [b for b in backends if b not in BACKENDS]
        if bad or not backends:
            raise ValueError(f"backends must be a non-empty subset of {BACKENDS}, got {bad}")
        self.backends = backends
        return self


@dataclass
class CompareResult:
    """Everything a compare run produced (the report folder holds the same, on disk).

    ``runs`` maps a run name (``"exact-mala"``, ``"<backend>/<mode>/<none|cd>"``) to its
    ArviZ data; ``comparison`` is :func:`uqmcmc.diagnostics.compare_to_exact`'s table,
    ``epistemic`` the per-draw spread, ``identities`` the exact-identity checks; ``timings``
    the seconds per stage. See :func:`run_compare` for an example.

    Examples
    --------
    >>> [f.name for f in dataclasses.fields(CompareResult)][:4]
    ['config', 'exact', 'runs', 'comparison']
    """

    config: CompareConfig
    exact: Any
    runs: dict[str, Any]
    comparison: Any
    epistemic: Any
    identities: Any
    calibration: dict[str, dict]
    timings: dict[str, float] = field(default_factory=dict)
    out: Path | None = None


# -- backends -----------------------------------------------------------------------------
def _rcnn_kwargs(dropout: float = 0.0) -> dict:
    """The RCNN that reaches ~1% relative RMSE on phi^4's grad S (3x3 stem, 1x1 blocks)."""
    return {"dropout": dropout} if dropout else {}


def make_backend(name: str, cfg: CompareConfig):
    """An unfitted backend of the given name with the RCNN surrogate of ``grad S``.

    MC dropout keeps ``n_masks=20`` fixed masks and the BNN 50 posterior draws (see
    :func:`fit_backend`): every mean-mode MALA step evaluates all of them twice, so these set
    the cost of the mean-mode chains. The deep kernel draws with 256 random features (its
    draws-mode step is the workflow's most expensive; the tails of its ``Delta S`` draws are
    Gaussian within +-0.06 excess kurtosis there).

    Examples
    --------
    >>> type(make_backend("last_layer", CompareConfig())).__name__
    'BayesianLastLayer'
    >>> make_backend("ensemble", CompareConfig(n_members=3)).n_members
    3
    """
    from uqmcmc.nets import RCNN
    from uqmcmc.uq.bnn import NumPyroBNN
    from uqmcmc.uq.deep_kernel import DeepKernelRegression
    from uqmcmc.uq.dropout import MCDropout
    from uqmcmc.uq.ensemble import DeepEnsemble
    from uqmcmc.uq.last_layer import BayesianLastLayer

    if name == "ensemble":
        return DeepEnsemble(RCNN, _rcnn_kwargs(), n_members=cfg.n_members)
    if name == "dropout":
        return MCDropout(RCNN, _rcnn_kwargs(dropout=0.05), n_masks=20)
    if name == "last_layer":
        return BayesianLastLayer(RCNN, _rcnn_kwargs())
    if name == "bnn":
        return NumPyroBNN(RCNN, {**_rcnn_kwargs(), "channels": 8, "depth": 1})
    if name == "deep_kernel":
        # 256 random features: the draws' covariance is exact for any count, and the excess
        # kurtosis of a phi^4 MALA step's Delta S draws is within +-0.06 of zero at 256 and
        # 512; the draws-mode step costs 0.4 times that of the library default (768).
        return DeepKernelRegression(RCNN, _rcnn_kwargs(), rff_features=256)
    raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")


def _fit_kwargs(name: str, cfg: CompareConfig) -> dict:
    if name == "bnn":
        return {"method": "svi", "num_samples": 50, "svi_steps": cfg.svi_steps}
    from uqmcmc.uq.training import cosine_adam

    kwargs = {"epochs": cfg.epochs, "optimizer": cosine_adam(3e-2), "progress": False}
    return {**kwargs, "gp_steps": cfg.gp_steps} if name == "deep_kernel" else kwargs


def fit_backend(name: str, cfg: CompareConfig, x, y, key):
    """Build and fit one backend on ``(x, y)`` with the workflow's training settings
    (``cfg.epochs`` of cosine-decayed Adam from 3e-2; SVI for the BNN).

    Examples
    --------
    >>> import jax
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.uq.data import make_dataset
    >>> data = make_dataset(Phi4(4, 0.5, 1.0), jax.random.key(0), 12, n_test=4)
    >>> cfg = CompareConfig(epochs=2)
    >>> b = fit_backend("last_layer", cfg, data.train.x, data.train.grad, jax.random.key(1))
    >>> mean, var = b.predict_mean_var(data.test.x)
    >>> mean.shape, bool((var > 0).all())
    ((4, 4, 4), True)
    """
    return make_backend(name, cfg).fit(x, y, key=key, **_fit_kwargs(name, cfg))


# -- per-draw chains ------------------------------------------------------------------------
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
    >>> from uqmcmc.uq.data import make_dataset
    >>> data = make_dataset(Phi4(4, 0.5, 1.0), jax.random.key(0), 12, n_test=4)
    >>> cfg = CompareConfig(epochs=1, n_members=2)
    >>> ens = fit_backend("ensemble", cfg, data.train.x, data.train.grad, jax.random.key(1))
    >>> alg = per_draw_algorithm(ens, jnp.arange(2), lambda b: mala(GradientDelta(b), 0.01))
    >>> state = alg.init(jnp.zeros((2, 4, 4)))  # chain k on member k
    >>> state, info = alg.step(jax.random.key(2), state)
    >>> state.position.shape, info.acceptance_rate.shape
    ((2, 4, 4), (2,))
    """
    return batched(draws, lambda draw: make_algorithm(FixedDraw(backend, draw)))


def _draw_specs(backend: Any, key, k: int):
    if callable(getattr(backend, "predict_member", None)):
        n = getattr(backend, "n_members", k)
        return jnp.arange(min(k, n))
    return jax.random.split(key, k)


# -- the workflow ---------------------------------------------------------------------------
def run_compare(cfg: CompareConfig | None = None, *, progress: bool = True) -> CompareResult:
    """Run the whole comparison and write the report folder ``cfg.out``.

    Examples
    --------
    A tiny run (one backend, short chains; ``CompareConfig.quick_config()`` is the short
    version, ``CompareConfig()`` the full one):

    >>> import tempfile
    >>> cfg = CompareConfig.quick_config(
    ...     backends=("last_layer",), steps=40, warmup=20, exact_steps=200, member_steps=40,
    ...     n_train=16, n_test=4, epochs=2, identity_positions=8, out=tempfile.mkdtemp())
    >>> res = run_compare(cfg, progress=False)
    >>> for name in sorted(res.runs):
    ...     print(name)
    exact-mala
    last_layer/draws/cd
    last_layer/draws/none
    last_layer/mean/cd
    last_layer/mean/none
    >>> (res.out / "report.html").exists(), (res.out / "comparison.csv").exists()
    (True, True)
    """
    cfg = (cfg or CompareConfig()).validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    target = Phi4(cfg.L, cfg.beta, cfg.g)
    key = jax.random.key(cfg.seed)
    k_data, k_fit, k_chain, k_draw = jax.random.split(key, 4)
    timings: dict[str, float] = {}
    n_stages = 3 + 2 * len(cfg.backends) + 1
    bar = tqdm(total=n_stages, unit="stage", disable=not progress, desc="compare")

    def stage(name: str):
        bar.set_description(f"compare: {name}")
        return time.perf_counter()

    bar_lock = threading.Lock()

    def done(name: str, t0: float):
        with bar_lock:
            timings[name] = round(time.perf_counter() - t0, 2)
            bar.update(1)

    common = dict(warmup=cfg.warmup, thin=cfg.thin, target=target, progress=False)
    with bar:
        t0 = stage("exact chain")
        exact = run_exact(
            cfg.L, cfg.beta, cfg.g, chains=cfg.chains, steps=cfg.exact_steps,
            warmup=cfg.warmup, thin=cfg.thin, seed=cfg.seed, record_positions=True,
            progress=False,
        ).idata  # fmt: skip
        # Every MALA chain starts from an equilibrated exact configuration: near the transition
        # MALA's autocorrelation time (~750 steps for |M| at L=8, beta=0.7) makes a start from
        # noise bias the first draws after a 1000-step warm-up, in every run alike.
        equilibrated = np.asarray(_arviz.group(exact, "posterior")["position"].values)
        x0 = jnp.asarray(equilibrated[:, -1])
        done("exact", t0)

        t0 = stage("exact MALA")
        runs: dict[str, Any] = {}
        exact_mala, step_size = _exact_mala(target, k_chain, x0, cfg, common)
        runs["exact-mala"] = exact_mala
        done("exact_mala", t0)

        t0 = stage("training set")
        from uqmcmc.uq.data import make_dataset

        data = make_dataset(target, k_data, cfg.n_train + cfg.n_test, n_test=cfg.n_test)
        done("dataset", t0)

        calibration: dict[str, dict] = {}
        predictions: dict[str, tuple] = {}
        chain_jobs: dict[str, list[Future]] = {}
        # Chain runs go to two worker threads while the next backend trains: one compiled
        # program rarely keeps both cores busy, two side by side do (about 0.8 times the wall
        # time). Every run has its own key, so the numbers do not depend on the order.
        with ThreadPoolExecutor(max_workers=2) as pool:
            for i, name in enumerate(cfg.backends):
                t0 = stage(f"train {name}")
                backend = fit_backend(
                    name, cfg, data.train.x, data.train.grad, jax.random.fold_in(k_fit, i)
                )
                backend.save(out / "backends" / name)
                calibration[name] = _calibration(backend, data.test)
                mean, var = backend.predict_mean_var(data.test.x)
                predictions[name] = (np.asarray(mean), np.asarray(var), np.asarray(data.test.grad))
                done(f"train_{name}", t0)

                k_b = jax.random.fold_in(k_chain, i + 1)
                jobs = [
                    pool.submit(_rule_pair, name, backend, mode, step_size, k_b, j, x0, cfg, common)
                    for j, mode in enumerate(("mean", "draws"))
                ]
                jobs.append(
                    pool.submit(
                        _member_runs, name, backend, target, step_size, cfg, k_draw, i,
                        equilibrated,
                    )
                )  # fmt: skip
                chain_jobs[name] = jobs
                _when_all_done(jobs, functools.partial(done, f"chains_{name}", time.perf_counter()))
            bar.set_description("compare: chains")
            members: dict[str, list] = {}
            for name, (mean_pair, draws_pair, member_job) in chain_jobs.items():
                for mode, job in (("mean", mean_pair), ("draws", draws_pair)):
                    naive, penalised = job.result()
                    runs[f"{name}/{mode}/none"] = naive
                    runs[f"{name}/{mode}/cd"] = penalised
                members[name] = member_job.result()

        t0 = stage("report")
        result = _report(cfg, target, exact, runs, members, calibration, predictions, out)
        result.timings = timings
        done("report", t0)
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    return result


def _when_all_done(jobs: list[Future], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once every job has finished (from the thread that finishes last)."""
    lock, left = threading.Lock(), [len(jobs)]

    def one_done(_):
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            callback()

    for job in jobs:
        job.add_done_callback(one_done)


def _exact_mala(target, key, x0, cfg: CompareConfig, common: Mapping):
    """Exact-ΔS MALA (the control run); tunes the step size shared by every surrogate run."""
    est = ExactDelta(target)
    attrs = {**est.params, "acceptance": "none", "kernel": "mala", "seed": cfg.seed}
    if cfg.step_size is not None:
        idata = run_chains(
            mala(est, cfg.step_size, acceptance="none"), key, x0, cfg.steps,
            record_positions=True, attrs=attrs, **common,
        )  # fmt: skip
        return idata, cfg.step_size
    idata = run_chains(
        lambda s: mala(est, s, acceptance="none"), key, x0, cfg.steps, step_size=0.01,
        target_acceptance=0.6, record_positions=True, attrs=attrs, **common,
    )  # fmt: skip
    return idata, float(_arviz.attrs(idata)["step_size"])


def _rule_pair(
    name: str, backend, mode: str, step_size, key, j: int, x0, cfg: CompareConfig, common
):
    """The naive and the Ceperley-Dewing chains of one estimator, run side by side (one
    compiled step, :func:`~uqmcmc.mcmc.acceptance.switch_penalty`); each chain pair starts
    from the same equilibrated configuration."""
    n_draws = cfg.n_draws if mode == "draws" else None
    est = GradientDelta(backend, rule=cfg.rule, mode=mode, n_draws=n_draws)
    rule = PENALTY[mode]
    alg = batched(
        jnp.array([False, True]),
        lambda on: mala(est, step_size, acceptance=switch_penalty(rule, est.n_draws, on)),
    )
    attrs = {**est.params, "kernel": "mala", "backend": name, "mode": mode,
             "seed": cfg.seed}  # fmt: skip
    idata = run_chains(
        alg, jax.random.fold_in(key, j), jnp.stack([x0, x0], axis=1), cfg.steps,
        record_positions=True, attrs=attrs, **common,
    )  # fmt: skip
    return split_batched(idata, [{"acceptance": "none"}, {"acceptance": rule}])


def _member_runs(
    name, backend, target, step_size, cfg: CompareConfig, key, i, equilibrated
) -> list:
    """One chain set per fixed member / posterior draw, all drawn in one vmapped run, each
    chain started from a random configuration of the exact chain (``equilibrated``)."""
    draws = _draw_specs(backend, jax.random.fold_in(key, i), cfg.n_fixed)
    k = int(jax.tree.leaves(draws)[0].shape[0])
    alg = per_draw_algorithm(
        backend, draws, lambda b: mala(GradientDelta(b, rule=cfg.rule), step_size, "none")
    )
    flat = equilibrated.reshape(-1, *target.shape)
    pick = jax.random.choice(
        jax.random.fold_in(key, 100 + i),
        flat.shape[0],
        (cfg.member_chains, k),
        replace=flat.shape[0] < cfg.member_chains * k,
    )
    x0 = jnp.asarray(flat)[pick]
    idata = run_chains(
        alg, jax.random.fold_in(key, 200 + i), x0, cfg.member_steps, warmup=cfg.warmup,
        thin=cfg.thin, target=target, progress=False,
    )  # fmt: skip
    attrs = {"backend": name, "mode": "fixed-draw", "acceptance": "none"}
    return split_batched(idata, [{**attrs, "draw": d} for d in range(k)])


def _calibration(backend, test) -> dict:
    from uqmcmc.uq import calibration

    m = calibration.metrics(backend, test.x, test.grad)
    return {k: float(v) for k, v in m.items() if np.ndim(v) == 0}


def _highlights(runs: Mapping[str, Any]) -> list[str]:
    """The runs whose trace and rank plots go in the report: the control and draws+penalty."""
    return [k for k in runs if k == "exact-mala" or k.endswith("/draws/cd")]


def _report(cfg, target, exact, runs, members, calibration, predictions, out: Path):
    import pandas as pd

    comparison = diagnostics.compare_to_exact(runs, exact)
    epistemic = diagnostics.epistemic_spread(members, exact) if members else None
    identities = diagnostics.check_identities(target, runs, num_positions=cfg.identity_positions)
    for name, idata in {"exact": exact, **runs}.items():
        _arviz.drop_posterior_vars(idata, ["position"])
        _arviz.save(idata, out / f"{name.replace('/', '_')}.nc")
    calib = pd.DataFrame([{"backend": k, **v} for k, v in calibration.items()])
    everything = {"exact": exact, **runs}
    figures = {
        "Observables across runs": diagnostics.plot_forest(comparison, epistemic),
        "Magnetisation histograms": diagnostics.plot_histograms(runs, exact),
        "Acceptance and penalty": diagnostics.plot_acceptance(runs),
        "Calibration of the backends": diagnostics.plot_calibration(predictions),
        "Predicted vs true grad S": diagnostics.plot_predicted_vs_true(predictions),
        "Trace plots": [diagnostics.plot_trace(everything[k]) for k in _highlights(runs)],
        "Rank plots": [diagnostics.plot_rank(everything[k]) for k in _highlights(runs)],
    }
    settings = {**dataclasses.asdict(cfg), "versions": versions()}
    sections = diagnostics.report_sections(
        settings=settings, comparison=comparison, epistemic=epistemic, identities=identities,
        figures=figures,
    )  # fmt: skip
    sections.insert(
        2,
        diagnostics.Section(
            "Backend calibration on the test split",
            "Metrics of each backend's predictive mean and variance of grad S on the held-out "
            "configurations (uqmcmc.uq.calibration.metrics).",
            calib,
            csv="calibration.csv",
        ),
    )
    title = f"uqmcmc compare: phi^4 L={cfg.L}, beta={cfg.beta}, g={cfg.g}"
    diagnostics.write_report(out, title=title, sections=sections)
    return CompareResult(cfg, exact, runs, comparison, epistemic, identities, calibration, out=out)


def format_comparison(comparison) -> str:
    """The comparison as a plain-text table: bias z-score per run (rows) and observable
    (columns), ``*`` marking a failed test, and the run's acceptance rate.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"run": ["a", "a"], "observable": ["abs_m", "sd"],
    ...                       "z": [0.5, 6.0], "pass": [True, False],
    ...                       "acceptance_rate": [0.6, 0.6]})
    >>> print(format_comparison(table))
    bias z-scores against the exact chain (* = fails at the stated level)
    run      abs_m         sd  accept
    ---------------------------------
    a        0.50       6.00*   0.600
    """
    obs = list(dict.fromkeys(comparison.observable))
    runs = list(dict.fromkeys(comparison.run))
    width = max(len(r) for r in runs) + 2
    head = f"{'run':<{width}}" + "".join(f"{o[:10]:>11}" for o in obs) + f"{'accept':>8}"
    lines = ["bias z-scores against the exact chain (* = fails at the stated level)", head,
             "-" * len(head)]  # fmt: skip
    for run in runs:
        rows = comparison[comparison.run == run].set_index("observable")
        cells = []
        for o in obs:
            z = rows.loc[o, "z"] if o in rows.index else np.nan
            failed = o in rows.index and not bool(rows.loc[o, "pass"])
            cells.append(f"{z:>10.2f}{'*' if failed else ' '}" if np.isfinite(z) else f"{'-':>11}")
        acc = rows["acceptance_rate"].iloc[0] if "acceptance_rate" in rows else np.nan
        lines.append(f"{run:<{width}}" + "".join(cells) + f"{acc:>8.3f}")
    return "\n".join(lines)
