"""The exact-chain workflow: reference chains of any target, their table, and the netCDF file
(what ``uqmcmc exact`` runs).

The default target is phi^4 (``L``, ``beta``, ``g``), sampled by checkerboard Metropolis sweeps;
``target="lj"`` or ``"module:Name"`` with ``params`` names any other
(:func:`~uqmcmc.targets.loading.load_target`), sampled as its
:class:`~uqmcmc.workflows.system.System` says (exact MALA tuned in warm-up unless the target is a
lattice with per-site action changes)."""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from uqmcmc import _arviz
from uqmcmc._validation import (
    MAX_SEED,
    SettingError,
    flag,
    positive,
    positive_int,
    real,
    writable_folder,
)
from uqmcmc.diagnostics.report_folder import StagedFolder
from uqmcmc.diagnostics.runs import component, posterior_arrays
from uqmcmc.mcmc import run_chains
from uqmcmc.targets.loading import source_record
from uqmcmc.workflows.system import (
    DEFAULTS,
    REFERENCE_ACCEPTANCE,
    System,
    check_target_settings,
    settings_system,
)


def check_lattice(L: Any, beta: Any, g: Any) -> None:
    """Check the phi^4 settings of a workflow: an even ``L >= 2`` (the exact chain sweeps a
    checkerboard), a finite ``beta`` and ``g >= 0`` (the action is unbounded below otherwise).

    Examples
    --------
    >>> check_lattice(8, 0.7, 1.0)
    >>> check_lattice(7, 0.7, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: L must be even (the exact chain sweeps a checkerboard), got 7
    """
    positive_int("L", L, minimum=2)
    if L % 2:
        raise SettingError(
            "{0} must be even (the exact chain sweeps a checkerboard), got {1!r}", "L", L
        )
    real("beta", beta)
    if real("g", g) < 0:
        raise SettingError(
            "{0} must be >= 0 (the action is unbounded below otherwise), got {1!r}", "g", g
        )


@dataclass
class ExactResult:
    """An exact reference run: the data, the table rows, and where it was written.

    Returned by :func:`run_exact`: ``idata`` is the ArviZ data of the chains, ``rows`` the
    :func:`exact_table` rows, ``path`` the netCDF file (``None`` when nothing was written).

    Examples
    --------
    >>> import dataclasses
    >>> [f.name for f in dataclasses.fields(ExactResult)]
    ['idata', 'rows', 'path', 'config']
    """

    idata: Any
    rows: list[dict] = field(default_factory=list)
    path: Path | None = None
    config: ExactConfig | None = None


def describe_exact(result: ExactResult) -> str:
    """One line saying what an exact run sampled.

    Examples
    --------
    >>> print(describe_exact(ExactResult(None, config=ExactConfig(L=4, chains=2, steps=50))))
    phi^4 L=4 beta=0.7 g=1.0: 2 chains x 50 sweeps (thin 10), exact checkerboard Metropolis
    >>> cfg = ExactConfig(target="lj", params={"N": 4}, chains=2, steps=50)
    >>> print(describe_exact(ExactResult(None, config=cfg)))
    lj N=4: 2 chains x 50 steps (thin 10), exact MALA (step tuned to acceptance 0.6)
    """
    c = result.config
    if c.target == "phi4":
        return (
            f"phi^4 L={c.L} beta={c.beta} g={c.g}: {c.chains} chains x {c.steps} sweeps "
            f"(thin {c.thin}), exact checkerboard Metropolis"
        )
    system = c.system()
    params = " ".join(f"{k}={v}" for k, v in c.params.items())
    if system.sampler == "checkerboard":
        how = "sweeps", "exact checkerboard Metropolis"
    elif c.step_size is None:
        how = "steps", f"exact MALA (step tuned to acceptance {REFERENCE_ACCEPTANCE})"
    else:
        how = "steps", f"exact MALA (step {c.step_size:g})"
    lines = [f"{c.target}{' ' + params if params else ''}: {c.chains} chains x {c.steps} "
             f"{how[0]} (thin {c.thin}), {how[1]}"]  # fmt: skip
    lines += [f"  default {line}" for line in system.describe_defaults()
              if line != DEFAULTS["reference"]]  # fmt: skip
    return "\n".join(lines)


def exact_table(idata, target: Any) -> list[dict]:
    """Rows ``observable, mean, err, ess_bulk, ess_tail, r_hat`` for a run of ``target``.

    The observables are those :meth:`System.table_observables
    <uqmcmc.workflows.system.System.table_observables>` names (for phi^4 ``abs_m``, ``m2``,
    ``m4``, ``action_density``, ``sd``); plain means get ArviZ's MCSE, the target's derived
    quantities (phi^4's ``chi_abs``, ``binder``, ``xi``) jackknife errors. Use it to tabulate a
    run read back from disk or made by :func:`uqmcmc.mcmc.run_chains`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import checkerboard, run_chains
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(L=4, beta=0.5, g=1.0)
    >>> idata = run_chains(checkerboard(target), 0, jnp.zeros((2, 4, 4)), 50, target=target,
    ...                    progress=False)
    >>> rows = exact_table(idata, target)
    >>> [r["observable"] for r in rows]
    ['abs_m', 'm2', 'm4', 'action_density', 'sd', 'chi_abs', 'binder', 'xi']
    >>> sorted(rows[0])
    ['err', 'ess_bulk', 'ess_tail', 'mean', 'observable', 'r_hat']
    """
    system = System.of(target)
    post = _arviz.group(idata, "posterior")
    arrays = posterior_arrays(idata)
    rows = []
    for name in system.table_observables(arrays):
        s = _arviz.summarize(component(arrays, name))
        rows.append(
            {
                "observable": name,
                "mean": s["mean"],
                "err": s["mcse"],
                "ess_bulk": s["ess_bulk"],
                "ess_tail": s["ess_tail"],
                "r_hat": s["r_hat"],
            }
        )
    for name, (mean, err) in system.derived(post).items():
        rows.append(
            {
                "observable": name,
                "mean": mean,
                "err": err,
                "ess_bulk": np.nan,
                "ess_tail": np.nan,
                "r_hat": np.nan,
            }
        )
    return rows


#: R-hat above which a table row counts as not mixed (Vehtari et al. 2021 recommend 1.01).
RHAT_LIMIT = 1.01


def unmixed(rows: list[dict], limit: float = RHAT_LIMIT) -> str | None:
    """A one-line warning naming the rows of :func:`exact_table` whose R-hat exceeds
    ``limit`` (the chains disagree: run longer), or ``None`` when every row is below it.

    Examples
    --------
    >>> rows = [{"observable": "energy", "r_hat": 1.19}, {"observable": "q6", "r_hat": 1.004},
    ...         {"observable": "heat_capacity", "r_hat": float("nan")}]
    >>> print(unmixed(rows))
    not mixed: R-hat > 1.01 for energy (1.19); the chains disagree, run longer (more steps)
    >>> unmixed(rows[1:]) is None
    True
    """
    bad = [r for r in rows if np.isfinite(r["r_hat"]) and r["r_hat"] > limit]
    if not bad:
        return None
    names = ", ".join(f"{r['observable']} ({r['r_hat']:.2f})" for r in bad)
    return f"not mixed: R-hat > {limit:g} for {names}; the chains disagree, run longer (more steps)"


def untabulated(result: ExactResult) -> list[str]:
    """The observables of an exact run that its table leaves out (vectors too long to show
    component by component, e.g. the default ``x`` of a 13-atom cluster): they are in the
    run's ArviZ data.

    Examples
    --------
    >>> res = run_exact(target="lj", params={"N": 13}, chains=2, steps=20, warmup=10, thin=1,
    ...                 progress=False)
    >>> untabulated(res)  # the cluster's own observables are all tabulated
    []
    """
    return result.config.system().untabulated(posterior_arrays(result.idata))


def format_table(rows: list[dict]) -> str:
    """Plain-text table of ``exact_table`` rows (``-`` for a missing ESS or R-hat).

    Examples
    --------
    >>> rows = [
    ...     {"observable": "abs_m", "mean": 0.52, "err": 0.011, "ess_bulk": 812.0,
    ...      "ess_tail": 950.0, "r_hat": 1.002},
    ...     {"observable": "binder", "mean": 0.41, "err": 0.03, "ess_bulk": float("nan"),
    ...      "ess_tail": float("nan"), "r_hat": float("nan")},
    ... ]
    >>> print(format_table(rows))
    observable              mean      error  ESS bulk  ESS tail   R-hat
    -------------------------------------------------------------------
    abs_m                0.52000    0.01100       812       950   1.002
    binder               0.41000    0.03000         -         -       -
    """
    head = (
        f"{'observable':<16}{'mean':>12}{'error':>11}{'ESS bulk':>10}{'ESS tail':>10}{'R-hat':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:

        def num(v, fmt):
            return format(v, fmt) if np.isfinite(v) else "-"

        lines.append(
            f"{r['observable']:<16}{r['mean']:>12.5f}{r['err']:>11.5f}"
            f"{num(r['ess_bulk'], '10.0f'):>10}{num(r['ess_tail'], '10.0f'):>10}"
            f"{num(r['r_hat'], '8.3f'):>8}"
        )
    return "\n".join(lines)


@dataclass
class ExactConfig:
    """Settings of an exact run: the ``target`` (``"phi4"``, ``"lj"``, ``"module:Name"``: see
    :func:`~uqmcmc.targets.loading.load_target`) with its ``params`` (phi^4's are ``L``,
    ``beta``, ``g``) and, for a target without a ``shape``, the ``shape`` of a configuration;
    ``chains`` x ``steps`` sweeps (checkerboard) or MALA steps after ``warmup``, every
    ``thin``-th kept; ``step_size``, the checkerboard's proposal half-width (default 1) or a
    fixed MALA step (default: tuned in warm-up); ``seed``; ``out`` (folder for
    ``exact.nc``, or ``None``); ``record_positions`` (keep whole configurations too);
    ``checkpoint`` (a folder to checkpoint the chains in and resume them from, outside
    ``out``: see :func:`~uqmcmc.mcmc.run_chains`; or ``None``).

    Examples
    --------
    >>> ExactConfig(L=4, chains=2).validate().chains
    2
    >>> ExactConfig(chains=1).validate()
    Traceback (most recent call last):
        ...
    ValueError: chains must be an integer >= 2, got 1
    >>> ExactConfig(target="lj", params={"N": 7}).validate().system().shape
    (7, 3)
    >>> ExactConfig(target="lj", L=6).validate()
    Traceback (most recent call last):
        ...
    ValueError: L, beta and g are phi^4's settings: give the parameters of 'lj' in params
    """

    L: int = 8
    beta: float = 0.7
    g: float = 1.0
    chains: int = 16
    steps: int = 20_000
    warmup: int = 2_000
    thin: int = 10
    step_size: float | None = None
    seed: int = 0
    out: str | Path | None = None
    record_positions: bool = False
    checkpoint: str | Path | None = None
    target: str = "phi4"
    params: dict = field(default_factory=dict)
    shape: tuple[int, ...] | None = None

    def system(self) -> System:
        """The target of these settings with its workflow defaults (built once per settings:
        a user's module is imported once).

        Examples
        --------
        >>> ExactConfig(L=4).system().sampler
        'checkerboard'
        """
        return settings_system(self)

    def validate(self) -> ExactConfig:
        """Check every setting, types included, before any work; returns ``self``.

        ``L`` must be even (checkerboard sweeps), ``steps`` at least ``thin``, ``out`` and
        ``checkpoint`` (when set) folders that can be written, the checkpoint not inside ``out``
        (which is replaced when the run is written).

        Examples
        --------
        >>> ExactConfig(steps=5, thin=10).validate()
        Traceback (most recent call last):
            ...
        ValueError: steps (5) must be at least thin (10)
        >>> ExactConfig(out="/proc/x/y").validate()
        Traceback (most recent call last):
            ...
        ValueError: out '/proc/x/y' cannot be written: ...
        >>> ExactConfig(out="run", checkpoint="run/chains").validate()
        Traceback (most recent call last):
            ...
        ValueError: checkpoint 'run/chains' must lie outside out 'run' (which is replaced ...)
        """
        system = check_target_settings(self, ExactConfig())
        positive_int("chains", self.chains, minimum=2)
        positive_int("steps", self.steps)
        positive_int("thin", self.thin)
        positive_int("warmup", self.warmup, minimum=0)
        if system.sampler == "mala" and self.step_size is None and self.warmup < 1:
            raise SettingError(
                "{0} must be >= 1 to tune the MALA step (or give {1})", "warmup", "step_size"
            )
        if self.steps < self.thin:
            raise SettingError(
                "{0} ({1}) must be at least {2} ({3})", "steps", self.steps, "thin", self.thin
            )
        if self.step_size is not None:
            positive("step_size", self.step_size)
        positive_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        flag("record_positions", self.record_positions)
        if self.out is not None:
            writable_folder("out", self.out)
        if self.checkpoint is not None:
            folder = writable_folder("checkpoint", self.checkpoint)
            if self.out is not None:
                out = Path(self.out).resolve()
                if folder.resolve() == out or out in folder.resolve().parents:
                    raise SettingError(
                        "{0} {1!r} must lie outside {2} {3!r} (which is replaced when the "
                        "run is written)",
                        "checkpoint",
                        str(self.checkpoint),
                        "out",
                        str(self.out),
                    )
        return self


def run_exact(
    config: ExactConfig | None = None,
    /,
    *,
    progress: bool = True,
    overwrite: bool = False,
    resume: str | Path | None = None,
    **settings: Any,
) -> ExactResult:
    """Exact reference chains of ``config.target`` (default phi^4, by checkerboard Metropolis).

    For phi^4 one step is one sweep of the lattice and chains start from independent
    standard-normal fields; any other target is sampled and started as its
    :class:`~uqmcmc.workflows.system.System` says (e.g. exact MALA tuned in warm-up).
    If ``out`` is set, the ArviZ data is written to ``out/exact.nc`` with a ``manifest.json``
    (settings, seed, versions, timings, file hashes); the folder is checked before sampling,
    a non-empty one is refused unless ``overwrite`` (and a compare report always), and it is
    assembled beside ``out`` and renamed into place (see
    :class:`~uqmcmc.diagnostics.report_folder.StagedFolder`). The chains are then checkpointed
    after every chunk in that folder (draws on disk, not in memory), so a run stopped by an
    error, Ctrl-C or a kill continues with ``resume=out`` (``uqmcmc exact --resume OUT``),
    bit-identical to an uninterrupted run. Without ``out``, ``checkpoint`` names a folder to
    checkpoint in; called again with the same settings, the run continues from it.

    Parameters
    ----------
    config
        The settings (:class:`ExactConfig`); default ``ExactConfig()``.
    progress
        Show a progress bar.
    overwrite
        Replace a non-empty ``out`` written by an earlier exact run.
    resume
        An unfinished run to continue: its ``out``, or the ``<out>.incomplete`` folder kept
        after an error or Ctrl-C (see :func:`~uqmcmc.workflows.resume.find_unfinished`); its
        own settings are used (``config``, if given, must agree).
    **settings
        Fields of :class:`ExactConfig` overriding ``config``'s.

    Examples
    --------
    >>> res = run_exact(L=4, beta=0.5, chains=4, steps=200, warmup=50, thin=1, progress=False)
    >>> [r["observable"] for r in res.rows][:2]
    ['abs_m', 'm2']
    >>> res = run_exact(target="lj", params={"N": 4}, chains=2, steps=100, warmup=100,
    ...                 progress=False)
    >>> [r["observable"] for r in res.rows]
    ['energy', 'rg', 'q6', 'heat_capacity']
    """
    unfinished = None
    if resume is not None:
        from uqmcmc.workflows.resume import confirm_own_code, find_unfinished, resumed_settings

        unfinished = find_unfinished(resume, "exact")
        given = dataclasses.replace(config, **settings) if config is not None else settings
        config, overwrite = resumed_settings(unfinished, ExactConfig, given)
        named = given.target if isinstance(given, ExactConfig) else given.get("target")
        confirm_own_code(unfinished, config.target, named)
        settings = {}
    cfg = dataclasses.replace(config or ExactConfig(), **settings).validate()
    if cfg.out is None:
        idata = _sample(cfg, progress, cfg.checkpoint)
        return ExactResult(idata, exact_table(idata, cfg.system()), None, cfg)
    folder = StagedFolder(
        cfg.out, command="exact", seed=cfg.seed,
        settings={**dataclasses.asdict(cfg), **source_record(cfg.target)},
        overwrite=overwrite, resume=unfinished,
    )  # fmt: skip
    folder.resumable = True
    with folder as tmp:
        t0 = time.perf_counter()
        folder.current = "chains"
        idata = _sample(cfg, progress, cfg.checkpoint or tmp / "checkpoints" / "chains")
        folder.timings["chains"] = round(time.perf_counter() - t0, 2)
        folder.current = "write"
        _arviz.save(idata, tmp / "exact.nc")
        shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    rows = exact_table(idata, cfg.system())
    return ExactResult(idata, rows, folder.path / "exact.nc", cfg)


#: At most this many sweeps per compiled chunk, so that Ctrl-C (handled between chunks) and
#: the checkpoints come every few seconds however long the run (20 chunks below 400 000).
MAX_CHUNK_SWEEPS = 20_000


def chunk_count(warmup: int, steps: int) -> int:
    """Chunks of a run of ``warmup + steps`` sweeps: 20, or more for runs so long that a
    twentieth would exceed :data:`MAX_CHUNK_SWEEPS`.

    Examples
    --------
    >>> chunk_count(500, 40_000), chunk_count(0, 100_000_000)
    (20, 5000)
    """
    return max(20, -(-(warmup + steps) // MAX_CHUNK_SWEEPS))


def _sample(cfg: ExactConfig, progress: bool, checkpoint: Any) -> Any:
    """The exact chains of ``cfg`` (checkpointed in ``checkpoint`` unless ``None``)."""
    system = cfg.system()
    k_init, k_run = jax.random.split(jax.random.key(cfg.seed))
    x0 = system.initial_positions(k_init, cfg.chains)
    ref = system.reference(cfg.step_size)
    return run_chains(
        ref["algorithm"],
        k_run,
        x0,
        cfg.steps,
        warmup=cfg.warmup,
        thin=cfg.thin,
        target=system,
        step_size=ref.get("step_size"),
        target_acceptance=ref.get("target_acceptance"),
        record_positions=cfg.record_positions,
        progress=progress,
        checkpoint=checkpoint,
        num_chunks=chunk_count(cfg.warmup, cfg.steps),
        attrs={**ref["attrs"], "seed": cfg.seed},
    )
