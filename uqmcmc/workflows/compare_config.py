"""Settings of the compare workflow: the defaults (the full run), the quick run, TOML files and
validation of every setting before any work."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from uqmcmc._validation import (
    MAX_SEED,
    SettingError,
    choice,
    flag,
    names,
    path_setting,
    positive,
    positive_floats,
    positive_int,
)
from uqmcmc.mcmc.estimators import QUADRATURE
from uqmcmc.uq import registry
from uqmcmc.workflows.system import SURROGATES, System, check_target_settings, settings_system

#: The built-in backends, in report order (the default of ``backends``); ``--backends`` accepts
#: every name of :func:`uqmcmc.uq.registry.names`, a user's registered backends included, and
#: ``paper_ensemble`` (the paper's weak surrogate; not in the default: its ten 3 x 3-convolution
#: networks at every step would more than double the default run).
BACKENDS = ("ensemble", "dropout", "last_layer", "bnn", "deep_kernel")


@dataclass
class CompareConfig:
    """Settings of a compare run (the defaults are the full run; :meth:`quick` the short one).

    The system: ``target`` (``"phi4"``, ``"lj"``, ``"module:Name"`` or ``"path/file.py:Name"``,
    see :func:`uqmcmc.targets.loading.load_target`) with its ``params`` (and ``shape``, for a
    target without one); phi^4's lattice and couplings are ``L``, ``beta``, ``g``. What the
    surrogates predict: ``surrogate`` (``"energy"`` or ``"gradient"``; default the target's
    choice, :attr:`~uqmcmc.workflows.System.default_surrogate`), with the target's network
    (:meth:`~uqmcmc.workflows.System.network`); energy networks are trained on energies and
    forces (``forces``, :func:`uqmcmc.uq.losses.energy_force_loss`) by the backends that can
    (ensemble, dropout, last layer), on energies by the others. A domain shift:
    ``train_params`` overrides the target's parameters where the training (and test)
    configurations are drawn (e.g. ``{"temperature": 0.3}`` for chains at another one; phi^4's
    ``beta`` and ``g``); they are labelled with the sampled target's action all the same.
    Chains: ``chains`` x ``steps`` MALA steps after ``warmup`` for every surrogate run, ``thin``
    between kept draws; ``exact_steps`` checkerboard sweeps for the reference. ``member_chains``
    x ``member_steps`` for each of ``n_fixed`` fixed-draw chain sets per backend;
    ``delayed_chains`` x ``delayed_steps`` of the delayed-acceptance control per backend (exact
    by construction; fewer, longer chains, so that |M| mixes), each step a sub-chain of
    ``delayed_substeps`` surrogate MALA steps (more than 1 needs an energy surrogate: the short
    correction; at exact MALA's step, untuned, every ``thin // k``-th step kept). Data:
    ``n_train`` + ``n_test`` configurations (Tzivrailis et al.: 180 + 20). ``epochs`` of
    training (``svi_steps`` for the BNN, plus ``gp_steps`` of the deep kernel's GP fit);
    ``n_members`` ensemble members; ``n_draws`` joint draws per step in ``draws`` mode; ``rule``
    the quadrature of ``grad S``. The positive control: a noisy oracle whose ΔS carries Gaussian
    noise of standard deviation ``oracle_sigma``, estimated from ``oracle_draws`` draws (naive
    and penalised chains). The noise sweep: ``sweep_backend``'s draws-mode chains (default:
    ``last_layer`` when it runs, else the first backend) with Gaussian noise added to each
    draw's ΔS so that the estimate's standard deviation grows by each level of ``noise_sweep``
    (empty: no sweep), naive and penalised.

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
    beta: float = 0.3
    g: float = 1.0
    backends: tuple[str, ...] = BACKENDS
    chains: int = 8
    steps: int = 16_000
    warmup: int = 500
    thin: int = 5
    exact_steps: int = 40_000
    n_fixed: int = 8
    member_chains: int = 4
    member_steps: int = 1000
    delayed_chains: int = 4
    delayed_steps: int = 12_000
    delayed_substeps: int = 1
    n_train: int = 180
    n_test: int = 20
    epochs: int = 100
    svi_steps: int = 5000
    gp_steps: int = 1000
    n_members: int = 10
    n_draws: int = 8
    oracle_sigma: float = 1.4
    oracle_draws: int = 8
    noise_sweep: tuple[float, ...] = (0.5, 1.0, 2.0)
    sweep_backend: str | None = None
    rule: str = "simpson"
    step_size: float | None = None
    identity_positions: int = 100
    seed: int = 0
    out: str = "uqmcmc-report"
    quick: bool = False
    target: str = "phi4"
    params: dict = field(default_factory=dict)
    shape: tuple[int, ...] | None = None
    surrogate: str | None = None
    forces: bool = True
    train_params: dict = field(default_factory=dict)

    def system(self) -> System:
        """The target of these settings with its workflow defaults (built once per settings).

        Examples
        --------
        >>> CompareConfig(L=4).system().name
        'phi4'
        """
        return settings_system(self)

    def train_system(self) -> System:
        """The target the training and test configurations are drawn from: :meth:`system`
        with ``train_params`` (the same object without them).

        Examples
        --------
        >>> cfg = CompareConfig(L=4, train_params={"beta": 0.2})
        >>> cfg.train_system().params["beta"], cfg.system().params["beta"]
        (0.2, 0.3)
        >>> same = CompareConfig(L=4)
        >>> same.train_system() is same.system()
        True
        """
        if not self.train_params:
            return self.system()
        return settings_system(self, self.train_params)

    def target_settings(self) -> dict:
        """The target's settings as :class:`~uqmcmc.workflows.ExactConfig` takes them.

        Examples
        --------
        >>> CompareConfig(L=4).target_settings()
        {'L': 4, 'beta': 0.3, 'g': 1.0}
        """
        if self.target == "phi4":
            return {"L": self.L, "beta": self.beta, "g": self.g}
        return {"target": self.target, "params": dict(self.params), "shape": self.shape}

    @property
    def surrogate_kind(self) -> str:
        """What the surrogates predict: ``surrogate``, else the target's choice.

        Examples
        --------
        >>> CompareConfig().surrogate_kind, CompareConfig(target="lj").surrogate_kind
        ('gradient', 'energy')
        """
        return self.surrogate if self.surrogate is not None else self.system().default_surrogate

    @classmethod
    def quick_config(cls, **overrides) -> CompareConfig:
        """A short version (about 3 min on 2 cores; the tests run it with two backends): small
        lattice, short training, chains just long enough for the positive control."""
        # 16 chains x 1500 steps: the least at which the positive control (sigma 1.7, 8 draws)
        # is flagged and its penalised chain passes on each of seeds 0-4 (8 x 400 flagged it
        # in 1 of 5 at sigma 1.4, 2 of 5 at 2.0).
        base = dict(
            chains=16, steps=1500, warmup=200, thin=2, exact_steps=4000,
            n_fixed=4, member_chains=2, member_steps=300, delayed_chains=4, delayed_steps=600,
            n_train=60, n_test=20, epochs=30, svi_steps=1500, gp_steps=300, n_members=4,
            n_draws=4, identity_positions=40,
            oracle_sigma=1.7, quick=True,
        )  # fmt: skip
        if overrides.get("target", "phi4") == "phi4":
            base.update(L=6, beta=0.5)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> CompareConfig:
        """Read settings from a TOML file (keys as the fields; ``quick = true`` starts from
        :meth:`quick_config`), then apply ``overrides``.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
        >>> _ = path.write_text("quick = true\\nsteps = 400\\n")
        >>> cfg = CompareConfig.from_toml(path, seed=3)
        >>> cfg.steps, cfg.seed, cfg.L
        (400, 3, 6)
        """
        data = {**read_toml(path), **overrides}
        if data.get("quick"):
            return cls.quick_config(**data)
        return cls(**data)

    def validate(self) -> CompareConfig:
        """Check every setting, types included, before any work; returns ``self`` with
        ``backends`` and ``noise_sweep`` as tuples.

        Raises :class:`~uqmcmc._validation.SettingError` (a ``ValueError``) naming the
        setting. Beyond each setting's own range: ``L`` even (checkerboard sweeps of the exact
        chain), ``steps``, ``exact_steps``, ``member_steps`` and ``delayed_steps`` at least
        ``thin``, and
        ``n_train + n_test`` configurations at least ``n_test + 1``.

        Examples
        --------
        >>> CompareConfig(steps=3, thin=5).validate()
        Traceback (most recent call last):
        ...
        ValueError: steps (3) must be at least thin (5)
        >>> CompareConfig(beta=True).validate()
        Traceback (most recent call last):
        ...
        ValueError: beta must be a finite number, got True
        >>> CompareConfig(delayed_substeps=4).validate()
        Traceback (most recent call last):
        ...
        ValueError: delayed_substeps = 4 needs an energy surrogate (--surrogate energy): ...
        """
        system = check_target_settings(self, CompareConfig())
        self._check_train_params(system)
        if self.surrogate is not None:
            choice("surrogate", self.surrogate, SURROGATES)
        try:
            system.network(self.surrogate_kind)
        except ValueError as err:
            raise SettingError("{0}", err) from None
        for name in ("steps", "thin", "exact_steps", "member_steps", "delayed_steps", "n_train",
                     "epochs", "svi_steps", "gp_steps", "n_members",
                     "identity_positions", "delayed_substeps"):  # fmt: skip
            positive_int(name, getattr(self, name))
        if self.delayed_substeps > 1 and self.surrogate_kind != "energy":
            raise SettingError(
                "{0} = {1} needs an energy surrogate (--surrogate energy): a gradient "
                "surrogate has no density, so its sub-chains are one step long",
                "delayed_substeps", self.delayed_substeps,
            )  # fmt: skip
        positive_int("chains", self.chains, minimum=2)
        positive_int("warmup", self.warmup, minimum=1)
        positive_int("n_fixed", self.n_fixed, minimum=2)
        positive_int("member_chains", self.member_chains, minimum=2)
        positive_int("delayed_chains", self.delayed_chains, minimum=2, maximum=self.chains)
        positive_int("n_test", self.n_test, minimum=2)
        positive_int("n_draws", self.n_draws, minimum=2)
        positive_int("oracle_draws", self.oracle_draws, minimum=2)
        positive("oracle_sigma", self.oracle_sigma)
        positive_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        for name in ("steps", "exact_steps", "member_steps", "delayed_steps"):
            if getattr(self, name) < self.thin:
                raise SettingError(
                    "{0} ({1}) must be at least {2} ({3})",
                    name,
                    getattr(self, name),
                    "thin",
                    self.thin,
                )
        if self.step_size is not None:
            positive("step_size", self.step_size)
        choice("rule", self.rule, QUADRATURE)
        flag("quick", self.quick)
        flag("forces", self.forces)
        path_setting("out", self.out)
        self.backends = names("backends", self.backends, registry.names())
        self.noise_sweep = positive_floats("noise_sweep", self.noise_sweep)
        if self.sweep_backend is not None:
            choice("sweep_backend", self.sweep_backend, self.backends)
        return self

    def _check_train_params(self, system: System) -> None:
        """``train_params``: a table of the target's parameters giving configurations of the
        same shape (phi^4: ``beta`` and ``g``)."""
        if not isinstance(self.train_params, dict):
            raise SettingError("{0} must be a table of parameters, got {1!r}", "train_params",
                               self.train_params)  # fmt: skip
        if not self.train_params:
            return
        if self.target == "phi4" and set(self.train_params) - {"beta", "g"}:
            raise SettingError(
                "phi^4's training set can differ in beta and g only, got {0} {1}",
                "train_params", sorted(self.train_params),
            )  # fmt: skip
        if self.target == "phi4":
            from uqmcmc.workflows.exact import check_lattice

            check_lattice(self.L, self.train_params.get("beta", self.beta),
                          self.train_params.get("g", self.g))  # fmt: skip
        try:
            shape = self.train_system().require_shape()
        except (TypeError, ValueError) as err:
            raise SettingError("{0} {1}: {2}", "train_params", self.train_params, err) from None
        if tuple(shape) != tuple(system.require_shape()):
            raise SettingError(
                "{0} {1} change the shape of a configuration ({2} against {3})",
                "train_params", self.train_params, tuple(shape), tuple(system.shape),
            )  # fmt: skip

    @property
    def swept_backend(self) -> str | None:
        """The backend of the noise sweep (``None`` without one).

        Examples
        --------
        >>> CompareConfig(backends=("ensemble", "last_layer")).swept_backend
        'last_layer'
        >>> CompareConfig(backends=("ensemble",), noise_sweep=()).swept_backend is None
        True
        """
        if not self.noise_sweep:
            return None
        if self.sweep_backend is not None:
            return self.sweep_backend
        return "last_layer" if "last_layer" in self.backends else tuple(self.backends)[0]

    def backend_settings(self) -> registry.BackendSettings:
        """The settings the backends' builders and fit settings read
        (:class:`uqmcmc.uq.registry.BackendSettings`), with the network of the target's
        surrogate.

        Examples
        --------
        >>> CompareConfig(n_members=4, epochs=7).backend_settings().epochs
        7
        """
        return registry.BackendSettings(
            n_members=self.n_members, epochs=self.epochs, svi_steps=self.svi_steps,
            gp_steps=self.gp_steps, network=self.system().network(self.surrogate_kind),
            forces=self.forces and self.surrogate_kind == "energy",
        )  # fmt: skip


def read_toml(path: str | Path) -> dict:
    """The settings of a TOML file as a dict, checked for unknown keys and layout.

    The settings are either all at the top level or all in a ``[compare]`` table (both at
    once is refused: the top-level ones would be silently ignored).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.toml"
    >>> _ = path.write_text("steps = 10\\n[compare]\\nthin = 2\\n")
    >>> read_toml(path)
    Traceback (most recent call last):
    ...
    ValueError: ...run.toml has both a [compare] table and top-level settings (steps): ...
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read the settings file {path}: {err}") from None
    if "compare" in data:
        table, top = data["compare"], sorted(k for k in data if k != "compare")
        if not isinstance(table, dict):
            raise ValueError(f"{path}: 'compare' must be a table ([compare]), got {table!r}")
        if top:
            raise ValueError(
                f"{path} has both a [compare] table and top-level settings ({', '.join(top)}): "
                "put every setting in one place"
            )
        data = table
    unknown = set(data) - {f.name for f in dataclasses.fields(CompareConfig)}
    if unknown:
        raise ValueError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return data
