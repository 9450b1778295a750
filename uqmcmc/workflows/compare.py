"""The compare workflow: surrogate chains against the exact chain, as one library function.

``run_compare(CompareConfig())`` is what ``uqmcmc compare`` runs: exact reference chains, the
training set (as in Tzivrailis, Rosso, Kawasaki, arXiv:2506.14594: 180 + 20 configurations),
every UQ backend trained on ``grad S`` or on the energy ``S`` (the settings' ``surrogate``), of
phi^4 or of any target (``target``: see :class:`~uqmcmc.workflows.System`), for each backend the
MALA chains {mean, draws} x {no penalty, Ceperley-Dewing} plus one chain set per fixed member /
posterior draw and a delayed-acceptance control, the comparison with the exact chain, exact-
identity checks, plots and a report folder. Settings live in
:mod:`~uqmcmc.workflows.compare_config`, chain runs in :mod:`~uqmcmc.workflows.compare_chains`,
the report in :mod:`~uqmcmc.workflows.compare_report`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from uqmcmc import _arviz
from uqmcmc._compile_cache import CompileClock
from uqmcmc.diagnostics.report_folder import StagedFolder
from uqmcmc.targets.loading import source_record
from uqmcmc.uq import registry
from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.baseline import WithBaseline
from uqmcmc.uq.io import provenance
from uqmcmc.workflows.compare_chains import (
    EXACT_COUPLED,
    ChainPlan,
    delayed_run,
    exact_coupled,
    exact_mala,
    member_runs,
    noise_sweep,
    oracle_pair,
    rule_pair,
)
from uqmcmc.workflows.compare_config import CompareConfig
from uqmcmc.workflows.compare_progress import ChainMeter, chain_set_steps, planned_chain_steps
from uqmcmc.workflows.compare_report import write_compare_report
from uqmcmc.workflows.compare_shift import CHAIN, shift_scores
from uqmcmc.workflows.exact import run_exact
from uqmcmc.workflows.resume import (
    CHECKPOINTS,
    StageCheckpoints,
    confirm_own_code,
    find_unfinished,
    resumed_settings,
)


@dataclass
class CompareResult:
    """Everything a compare run produced (the report folder holds the same, on disk).

    ``runs`` maps a run name (``"exact-mala"``, ``"<backend>/<mode>/<none|cd>"``) to its ArviZ
    data; ``comparison`` is :func:`uqmcmc.diagnostics.compare_to_exact`'s table, ``epistemic``
    the per-draw spread, ``identities`` the exact-identity checks; ``timings`` the seconds per
    stage; ``members`` the per-draw runs of each backend and ``predictions`` each backend's
    ``(mean, var, truth)`` of its labels (``grad S`` or ``S``) on the test split; ``sweep`` the
    noise-sweep runs (``"<backend>/noise<s>/<none|cd>"``); ``evaluations`` each backend's
    network evaluations per :meth:`predict_mean_var` configuration; ``compilation`` the seconds
    JAX spent compiling (``seconds``, summed over the worker threads) and the number of XLA
    compilations (``compiles``), up to the report; ``shift`` each backend's epistemic-variance
    scores on the test split, the exact chain and its mean-mode chain
    (:func:`~uqmcmc.workflows.compare_shift.shift_scores`). See :func:`run_compare` for an
    example.

    Examples
    --------
    >>> import dataclasses
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
    members: dict[str, list] = field(default_factory=dict)
    predictions: dict[str, tuple] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, int] = field(default_factory=dict)
    compilation: dict[str, float] = field(default_factory=dict)
    shift: dict[str, dict] = field(default_factory=dict)


def run_compare(
    cfg: CompareConfig | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
    resume: str | Path | None = None,
    target: str | None = None,
) -> CompareResult:
    """Run the whole comparison and write the report folder ``cfg.out``.

    The settings and ``cfg.out`` are checked before any work: a non-empty folder is refused
    unless ``overwrite`` (and one holding another command's report always). The report is
    assembled in a temporary sibling folder and renamed into place at the end, with a
    ``manifest.json`` (settings, seed, versions, timings, each stage's status, each file's
    sha256); each saved backend's ``meta.json`` records the settings and seed
    (``"provenance"``). After an error or Ctrl-C the old folder is untouched and what was
    written is kept in ``<out>.incomplete`` (see
    :class:`~uqmcmc.diagnostics.report_folder.StagedFolder`).

    Every finished stage is checkpointed as it ends (the exact chain, the control, each
    trained backend, each chain job: :mod:`~uqmcmc.workflows.resume`).
    ``resume=<folder>`` continues an unfinished run (its ``<out>.incomplete``, the partial
    folder a killed run left, or ``<out>`` to find either) with the settings it started with
    (``cfg``, if given, must agree) and computes only what is missing; the report is the same,
    number for number, as that of an uninterrupted run. A run of a user's own target resumes
    only when ``target`` (or ``cfg.target``) names that target again.

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
    exact-mala/coupled
    last_layer/delayed
    last_layer/draws/cd
    last_layer/draws/none
    last_layer/mean/cd
    last_layer/mean/none
    oracle/draws/cd
    oracle/draws/none
    >>> (res.out / "report.html").exists(), (res.out / "comparison.csv").exists()
    (True, True)
    """
    unfinished = None
    if resume is not None:
        unfinished = find_unfinished(resume, "compare")
        named = target if target is not None else (cfg.target if cfg is not None else None)
        cfg, overwrite = resumed_settings(unfinished, CompareConfig, cfg)
        confirm_own_code(unfinished, cfg.target, named)
    cfg = (cfg or CompareConfig()).validate()
    settings = {**dataclasses.asdict(cfg), **source_record(cfg.target)}
    folder = StagedFolder(
        cfg.out, command="compare", settings=settings, seed=cfg.seed, overwrite=overwrite,
        resume=unfinished,
    )  # fmt: skip
    folder.resumable = True
    with folder as out, provenance(command="compare", seed=cfg.seed, settings=settings):
        result = _run_stages(cfg, out, progress, folder)
    result.out = folder.path
    return result


def _run_stages(cfg: CompareConfig, out: Path, progress: bool, folder: StagedFolder):
    """The stages of :func:`run_compare`, writing into ``out`` (the folder being assembled);
    ``folder.timings`` and ``folder.current`` follow the stages for the manifest."""
    target = cfg.system()
    label = "grad" if cfg.surrogate_kind == "gradient" else "action"
    key = jax.random.key(cfg.seed)
    k_data, k_fit, k_chain, k_draw = jax.random.split(key, 4)
    timings: dict[str, float] = folder.timings
    # + the positive control, the noise sweep and the report
    n_stages = 3 + 2 * len(cfg.backends) + 2 + bool(cfg.swept_backend)
    # No ETA from the stage rate (stages differ 100-fold): the chain meter's time left instead.
    bar = tqdm(
        total=n_stages, disable=not progress, desc="compare",
        bar_format="{desc} {n_fmt}/{total_fmt} stages [{elapsed}]{postfix}",
    )  # fmt: skip

    def stage(name: str):
        folder.current = name
        bar.set_description(f"compare: {name}")
        return time.perf_counter()

    bar_lock = threading.Lock()

    def done(name: str, t0: float):
        with bar_lock:
            if name not in timings:  # a resumed stage keeps the time it took
                timings[name] = round(time.perf_counter() - t0, 2)
            bar.update(1)
            folder.save_progress()

    def show(meter: ChainMeter) -> None:
        with bar_lock:
            bar.set_postfix_str(meter.describe(), refresh=True)

    meter = ChainMeter(planned_chain_steps(cfg), on_change=show if progress else None)
    folder.progress = meter
    ckpt = StageCheckpoints(out, on_skip=meter.skip)
    run_steps, member_steps, delayed_steps = chain_set_steps(cfg)
    with bar, CompileClock() as clock:
        t0 = stage("exact chain")
        exact = ckpt.piece(
            "exact",
            lambda: run_exact(
                **cfg.target_settings(), chains=cfg.chains, steps=cfg.exact_steps,
                warmup=cfg.warmup, thin=cfg.thin, seed=cfg.seed, record_positions=True,
                progress=False,
            ).idata,
        )  # fmt: skip
        # Every MALA chain starts from an equilibrated exact configuration: near the transition
        # MALA's autocorrelation time (~750 steps for |M| at L=8, beta=0.7; ~60 at beta=0.3)
        # makes a start from noise bias the first draws after a short warm-up.
        equilibrated = np.asarray(_arviz.group(exact, "posterior")["position"].values)
        done("exact", t0)

        t0 = stage("exact MALA")
        runs: dict[str, Any] = {}
        control = ckpt.piece(
            "exact-mala",
            lambda: exact_mala(ChainPlan(cfg, target, 0.0, equilibrated, progress=meter),
                               k_chain)[0],
            run_steps,
        )  # fmt: skip
        step_size = cfg.step_size
        if step_size is None:
            step_size = float(_arviz.attrs(control)["step_size"])
        plan = ChainPlan(cfg, target, step_size, equilibrated, progress=meter)
        runs["exact-mala"] = control
        done("exact_mala", t0)

        t0 = stage("training set")
        from uqmcmc.workflows.training_data import make_dataset

        # Training configurations from exact chains: phi^4's checkerboard sweeps, else exact
        # MALA at the reference's tuned step (tuned anew where ``train_params`` shift the
        # target), labelled with the sampled target's action.
        drawn_from, sampler, tune = cfg.train_system(), None, {}
        if target.sampler != "checkerboard":
            exact_step = float(_arviz.attrs(exact)["step_size"])
            if cfg.train_params:
                ref = drawn_from.reference()
                sampler = ref["algorithm"]
                tune = {"step_size": exact_step, "target_acceptance": ref["target_acceptance"]}
            else:
                sampler = target.reference(exact_step)["algorithm"]
        data = make_dataset(drawn_from, k_data, cfg.n_train + cfg.n_test, n_test=cfg.n_test,
                            algorithm=sampler, labels=target, **tune)  # fmt: skip
        done("dataset", t0)

        # A target's exact part (its ``baseline``) is added to every backend, which learns the
        # rest (uqmcmc.uq.baseline).
        baseline = getattr(target, "baseline", None)
        fit_data = data.train if not callable(baseline) else _residual(data.train, baseline)
        settings = cfg.backend_settings()  # the network scaled to the training data, if it asks
        network = settings.net.fitted(fit_data.x, fit_data.action)
        settings = dataclasses.replace(settings, network=network)
        calibration: dict[str, dict] = {}
        predictions: dict[str, tuple] = {}
        evaluations: dict[str, int] = {}
        chain_jobs: dict[str, list[Future]] = {}
        trained: dict[str, Any] = {}
        sweep_job: Future | None = None
        # Chain runs go to two worker threads while the next backend trains: one compiled
        # program rarely keeps both cores busy, two side by side do (about 0.8 times the wall
        # time). Every run's key is fixed in advance, so the numbers do not depend on the order.
        # The runs of the bias decomposition share ONE key (coupled: common random numbers).
        k_pair = jax.random.fold_in(k_chain, PAIR_KEY)
        with _cancellable_pool(2, on_stop=(meter.cancel, ckpt.cancel)) as pool:
            t_oracle = time.perf_counter()

            def piece(name: str, steps: int, fn, *args) -> Future:
                return pool.submit(ckpt.piece, name, functools.partial(fn, *args), steps)

            oracle_job = piece("oracle", run_steps, oracle_pair, plan, k_pair)
            _when_all_done([oracle_job], functools.partial(done, "chains_oracle", t_oracle))
            exact_job = piece(EXACT_COUPLED, run_steps, exact_coupled, plan, k_pair)
            for i, name in enumerate(cfg.backends):
                t0 = stage(f"train {name}")
                backend = _trained(
                    ckpt, name, out / "backends" / name,
                    lambda i=i, name=name: registry.fit(
                        name, settings, fit_data.x, _labels(fit_data, label, settings, name),
                        jax.random.fold_in(k_fit, i),
                    ),
                )  # fmt: skip
                if callable(baseline):
                    part = baseline if label == "action" else jax.grad(baseline)
                    backend = WithBaseline(backend, part, len(target.shape))
                trained[name] = backend
                truth = getattr(data.test, label)
                calibration[name] = _calibration(backend, data.test.x, truth)
                mean, var = backend.predict_mean_var(data.test.x)
                predictions[name] = (np.asarray(mean), np.asarray(var), np.asarray(truth))
                evaluations[name] = (
                    backend.evaluations_per_mean if isinstance(backend, UQBackend) else 1
                )
                done(f"train_{name}", t0)

                jobs = [
                    piece(f"{name}/{mode}", run_steps, rule_pair, plan, name, backend, mode,
                          k_pair)
                    for mode in ("mean", "draws")
                ]  # fmt: skip
                jobs.append(
                    piece(f"{name}/members", member_steps, member_runs, plan, name, backend,
                          k_draw, i)
                )  # fmt: skip
                jobs.append(
                    piece(f"{name}/delayed", delayed_steps, delayed_run, plan, name, backend,
                          k_draw, i)
                )  # fmt: skip
                chain_jobs[name] = jobs
                _when_all_done(jobs, functools.partial(done, f"chains_{name}", time.perf_counter()))
                if name == cfg.swept_backend:
                    when = functools.partial(done, "chains_noise_sweep", time.perf_counter())
                    sweep_job = piece("noise-sweep", run_steps, noise_sweep, plan, name,
                                      backend, k_pair)  # fmt: skip
                    _when_all_done([sweep_job], when)
            folder.current = "chains"
            bar.set_description("compare: chains")
            members: dict[str, list] = {}
            runs["oracle/draws/none"], runs["oracle/draws/cd"] = oracle_job.result()
            runs[EXACT_COUPLED] = exact_job.result()
            for name, (mean_pair, draws_pair, member_job, delayed_job) in chain_jobs.items():
                for mode, job in (("mean", mean_pair), ("draws", draws_pair)):
                    naive, penalised = job.result()
                    runs[f"{name}/{mode}/none"] = naive
                    runs[f"{name}/{mode}/cd"] = penalised
                members[name] = member_job.result()
                runs[f"{name}/delayed"] = delayed_job.result()
            sweep = sweep_job.result() if sweep_job is not None else {}
        shift = {
            name: shift_scores(backend, data.test.x, exact, runs[CHAIN.format(b=name)])
            for name, backend in trained.items()
        }

        t0 = stage("report")
        result = CompareResult(
            cfg, exact, runs, None, None, None, calibration, out=out, members=members,
            predictions=predictions, sweep=sweep, evaluations=evaluations, timings=timings,
            compilation={"seconds": round(clock.seconds, 2), "compiles": clock.compiles},
            shift=shift,
        )  # fmt: skip
        write_compare_report(result)
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        done("report", t0)
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    return result


def _trained(ckpt: StageCheckpoints, name: str, path: Path, fit: Callable[[], Any]) -> Any:
    """Backend ``name``: fitted and saved at ``path`` (checkpoint ``train-<name>``), or read
    from there when a resumed run had finished it. Either way the saved backend is read back,
    so a resumed run predicts exactly as an uninterrupted one; a backend that cannot be read
    back is used as fitted (and fitted again on resume: the key is the same)."""
    if ckpt.done(f"train-{name}"):
        try:
            return registry.load(name, path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(f"backend {name!r} saved at {path} could not be read ({err}): "
                          "training it again", stacklevel=2)  # fmt: skip
    backend = fit()
    backend.save(path)
    try:
        loaded = registry.load(name, path)
    except (OSError, ValueError, KeyError, TypeError, NotImplementedError):
        return backend
    ckpt.mark(f"train-{name}")
    return loaded


#: Seconds a stopped run waits for its running chain jobs to stop at their next chunk.
STOP_WAIT_S = 30.0


class _Pool(ThreadPoolExecutor):
    """A thread pool that remembers its jobs."""

    def __init__(self, workers: int):
        super().__init__(max_workers=workers)
        self.jobs: list[Future] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        job = super().submit(fn, *args, **kwargs)
        self.jobs.append(job)
        return job


@contextlib.contextmanager
def _cancellable_pool(workers: int, on_stop: tuple[Callable[[], Any], ...] = ()):
    """A thread pool that, on an error or Ctrl-C, drops its queued jobs, calls each of
    ``on_stop`` (which make the running jobs stop at their next chunk without writing:
    :meth:`ChainMeter.cancel`, :meth:`StageCheckpoints.cancel`) and waits for them at most
    :data:`STOP_WAIT_S` seconds, so the interruption is prompt and a run resumed in the same
    process never meets a job of the stopped one."""
    pool = _Pool(workers)
    try:
        yield pool
    except BaseException:
        for stop in on_stop:
            stop()
        pool.shutdown(wait=False, cancel_futures=True)
        futures.wait(pool.jobs, timeout=STOP_WAIT_S)
        raise
    pool.shutdown(wait=True)


#: Folded into the chain key for the coupled runs (the exact-ΔS reference at the tuned step,
#: every backend's mode pairs, the positive control and the noise sweep).
PAIR_KEY = 10_000


def _when_all_done(jobs: list[Future], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once every job has finished (from the thread that finishes last),
    unless one of them failed or was cancelled (a stopped run marks no stage done)."""
    lock, left = threading.Lock(), [len(jobs)]

    def one_done(job: Future):
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last and all(not j.cancelled() and j.exception() is None for j in jobs):
            callback()

    for job in jobs:
        job.add_done_callback(one_done)


def _residual(split, baseline):
    """``split`` with labels minus the baseline's (:func:`~uqmcmc.uq.baseline.residual_labels`)."""
    from uqmcmc.uq.baseline import residual_labels

    action, grad = residual_labels(baseline, split.x, split.action, split.grad)
    return type(split)(split.x, grad, action)


def _labels(split, label: str, settings: registry.BackendSettings, name: str):
    """The training labels of backend ``name``: ``grad S`` or ``S``, with the gradients packed
    in (:func:`~uqmcmc.uq.losses.energy_force_labels`) when it trains on forces too."""
    if label == "action" and settings.forces and registry.get(name).forces:
        from uqmcmc.uq.losses import energy_force_labels

        return energy_force_labels(split.action, split.grad)
    return getattr(split, label)


def _calibration(backend, x, truth) -> dict:
    from uqmcmc.uq import calibration

    m = calibration.metrics(backend, x, truth)
    return {k: float(v) for k, v in m.items() if np.ndim(v) == 0}
