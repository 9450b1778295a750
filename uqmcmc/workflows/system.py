r"""What a workflow needs from a target, with a stated default for whatever it does not supply.

A target needs only ``action(x)`` and ``grad(x)``; :class:`System` wraps it with the rest a
workflow asks for, and records which defaults it used (``system.defaults``), so a run can say
so:

- **shape** of one configuration: the target's ``shape``, else the ``shape`` given.
- **observables**: the target's ``observables(x)``, else each coordinate ``x`` and its square
  ``x2``, flattened (their means are the first two moments), and the Stein term
  ``sd = mean_i x_i dS/dx_i`` (exact expectation 1: integration by parts, for a density that
  falls off in every direction).
- **derived quantities** with errors: the target's ``derived(draws)``, else none.
- **starts**: the target's ``initial_positions(key, n)``, else standard-normal configurations.
- **exact reference sampler**: checkerboard Metropolis sweeps for a lattice target with a
  per-site ``local_delta`` (:func:`uqmcmc.mcmc.checkerboard`); else exact MALA with the step
  tuned in warm-up towards acceptance :data:`REFERENCE_ACCEPTANCE`.
- **surrogate**: the target's ``default_surrogate``, else ``"energy"``; its **network** the
  target's ``default_network(surrogate)``, else an :class:`~uqmcmc.nets.MLP` of the flattened
  configuration (energy surrogates only).
- **exact identities**: every target gets the Stein identities of
  :mod:`uqmcmc.diagnostics.identities`, which integration by parts gives for any smooth
  action, e.g. :math:`\langle x_i\,\partial S/\partial x_i\rangle = 1`.

A :class:`System` is itself a target (it passes every other attribute to the target it
wraps), so the chain driver records its observables and parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc.diagnostics.runs import available
from uqmcmc.targets.base import check_target
from uqmcmc.targets.loading import load_target

__all__ = [
    "DEFAULTS",
    "REFERENCE_ACCEPTANCE",
    "SURROGATES",
    "System",
    "check_target_settings",
    "settings_system",
]

#: What a surrogate predicts: the energy (action) ``S``, or its gradient ``grad S``.
SURROGATES = ("energy", "gradient")

#: The default energy network of a target without its own: an MLP of the flattened
#: configuration, two hidden layers of 64 (one of 16 for the BNN), whose readout also sees each
#: coordinate and its square (``quadratic``: a tanh network alone is bounded, and a chain on a
#: bounded energy drifts away).
DEFAULT_HIDDEN, DEFAULT_SMALL = (64, 64), (16,)

#: Target acceptance of the exact MALA reference when the target has no sampler of its own.
REFERENCE_ACCEPTANCE = 0.6

#: What each default of :class:`System` is, as a run reports it.
DEFAULTS = {
    "observables": "observables: each coordinate x, its square x2 and the Stein term sd "
    "(mean of x dS/dx, exact 1)",
    "starts": "starts: standard-normal configurations",
    "reference": f"exact reference: MALA tuned to acceptance {REFERENCE_ACCEPTANCE}",
    "params": "parameters: the class name and the given parameters go in the attrs (the target "
    "has no `params`)",
    "surrogate": "surrogate: the energy",
    "network": f"network: an MLP of the flattened configuration, hidden layers {DEFAULT_HIDDEN}, "
    "plus each coordinate and its square (a readout that can confine)",
}


def _default_observables(target: Any, x: jax.Array) -> dict[str, jax.Array]:
    """Each coordinate (flattened, in C order), its square and the Stein term."""
    flat = jnp.ravel(x)
    return {"x": flat, "x2": flat * flat, "sd": jnp.mean(flat * jnp.ravel(target.grad(x)))}


@dataclass(frozen=True, eq=False)
class System:
    """A target with everything a workflow needs; see the module docstring for the defaults.

    Build one with :meth:`load` (from a name or ``module:Name`` and parameters) or
    :meth:`of` (from a target object).

    Attributes
    ----------
    target
        The wrapped target.
    name
        How it was named (``"phi4"``, ``"lj"``, ``"module:Name"`` or the class name).
    shape
        Shape of one configuration (``None`` if neither the target nor the caller gave one:
        then only what needs no configuration works, and :meth:`require_shape` says so).
    defaults
        Keys of :data:`DEFAULTS` this system uses because the target does not supply them.
    given
        The parameters the target was built with (recorded when it has no ``params``).

    Examples
    --------
    A target with only an action and its gradient:

    >>> import jax, jax.numpy as jnp
    >>> class Quartic:
    ...     def action(self, x):
    ...         return jnp.sum(x**4) / 4
    ...     def grad(self, x):
    ...         return x**3
    >>> system = System.of(Quartic(), shape=(3,))
    >>> system.defaults
    ('observables', 'starts', 'reference', 'params', 'surrogate', 'network')
    >>> sorted(system.observables(jnp.ones(3))), system.sampler
    (['sd', 'x', 'x2'], 'mala')
    >>> system.initial_positions(jax.random.key(0), 4).shape
    (4, 3)
    >>> System.load("phi4", {"L": 4, "beta": 0.5, "g": 1.0}).sampler
    'checkerboard'
    """

    target: Any
    name: str
    shape: tuple[int, ...] | None
    defaults: tuple[str, ...]
    given: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        target: Any,
        name: str | None = None,
        shape: Any = None,
        given: Mapping[str, Any] | None = None,
    ) -> System:
        """Wrap ``target``; ``shape`` is needed only if the target has no ``shape``.

        Examples
        --------
        >>> from uqmcmc.targets import LJCluster
        >>> System.of(LJCluster(N=4)).shape, System.of(LJCluster(N=4)).defaults
        ((4, 3), ('reference',))
        """
        if isinstance(target, System):
            return target
        check_target(target)
        own = getattr(target, "shape", None)
        sizes = None
        if own is not None or shape is not None:
            sizes = tuple(int(n) for n in (own if own is not None else shape))
            if own is not None and shape is not None and tuple(int(n) for n in shape) != sizes:
                raise ValueError(f"shape {tuple(shape)} disagrees with the target's shape {sizes}")
            if not sizes or any(n < 1 for n in sizes):
                raise ValueError(f"shape must be positive sizes, got {sizes}")
        defaults = []
        if not callable(getattr(target, "observables", None)):
            defaults.append("observables")
        if not callable(getattr(target, "initial_positions", None)):
            defaults.append("starts")
        if not callable(getattr(target, "local_delta", None)):
            defaults.append("reference")
        if not isinstance(getattr(target, "params", None), Mapping):
            defaults.append("params")
        if getattr(target, "default_surrogate", None) not in SURROGATES:
            defaults.append("surrogate")
        if not callable(getattr(target, "default_network", None)):
            defaults.append("network")
        return cls(target, name or type(target).__name__, sizes, tuple(defaults), dict(given or {}))

    def require_shape(self) -> tuple[int, ...]:
        """The shape of a configuration, or a ``ValueError`` saying how to give one.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> class Bare:
        ...     def action(self, x):
        ...         return jnp.sum(x**2)
        ...     def grad(self, x):
        ...         return 2 * x
        >>> System.of(Bare()).require_shape()
        Traceback (most recent call last):
        ...
        ValueError: target Bare has no `shape`: give the shape of one configuration (...)
        """
        if self.shape is None:
            raise ValueError(
                f"target {self.name} has no `shape`: give the shape of one configuration "
                "(shape=... or --shape, e.g. --shape 13,3)"
            )
        return self.shape

    @classmethod
    def load(
        cls, spec: str | Any, params: Mapping[str, Any] | None = None, shape: Any = None
    ) -> System:
        """The system of :func:`uqmcmc.targets.loading.load_target` ``(spec, params)``.

        Examples
        --------
        >>> System.load("lj", {"N": 5, "d": 2}).shape
        (5, 2)
        """
        name = spec if isinstance(spec, str) else None
        return cls.of(load_target(spec, params), name=name, shape=shape, given=params)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("target", "name", "shape", "defaults"):
            raise AttributeError(attr)
        return getattr(self.target, attr)

    def action(self, x: jax.Array) -> jax.Array:
        """The target's action."""
        return self.target.action(x)

    def grad(self, x: jax.Array) -> jax.Array:
        """The target's gradient of the action."""
        return self.target.grad(x)

    @property
    def params(self) -> dict:
        """The target's ``params`` (recorded in a run's attrs), else its class name and the
        parameters it was built with."""
        own = getattr(self.target, "params", None)
        if isinstance(own, Mapping):
            return dict(own)
        return {"target": type(self.target).__name__, **self.given}

    def observables(self, x: jax.Array) -> dict[str, jax.Array]:
        """Per-configuration observables: the target's, else ``x`` and ``x2``."""
        if "observables" in self.defaults:
            return _default_observables(self.target, x)
        return self.target.observables(x)

    @property
    def observable_dims(self) -> dict:
        """ArviZ dims of the target's vector observables (none for the defaults)."""
        return dict(getattr(self.target, "observable_dims", {}) or {})

    def derived(self, draws: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
        """The target's derived quantities ``name -> (value, error)`` of a posterior, or none."""
        own = getattr(self.target, "derived", None)
        return dict(own(draws)) if callable(own) else {}

    def initial_positions(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` starting configurations: the target's, else standard normal."""
        if "starts" in self.defaults:
            return jax.random.normal(key, (n, *self.require_shape()))
        return jnp.asarray(self.target.initial_positions(key, n))

    @property
    def default_surrogate(self) -> str:
        """What the compare workflow's surrogates predict unless told otherwise
        (:data:`SURROGATES`): the target's ``default_surrogate``, else ``"energy"``."""
        return "energy" if "surrogate" in self.defaults else self.target.default_surrogate

    def network(self, surrogate: str | None = None) -> Any:
        """The network of a ``surrogate`` surrogate (default :attr:`default_surrogate`), a
        :class:`~uqmcmc.uq.registry.Network`: the target's ``default_network(surrogate)``,
        else an MLP of the flattened configuration (:data:`DEFAULT_HIDDEN`), which predicts
        energies only.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> class Bowl:
        ...     shape = (2,)
        ...     def action(self, x):
        ...         return jnp.sum(x**2) / 2
        ...     def grad(self, x):
        ...         return x
        >>> net = System.of(Bowl()).network()
        >>> net.cls.__name__, net.kwargs
        ('MLP', {'in_features': (2,), 'hidden': (64, 64), 'quadratic': True})
        >>> System.of(Bowl()).network("gradient")
        Traceback (most recent call last):
        ...
        ValueError: target Bowl has no network for a gradient surrogate: ...
        """
        surrogate = self.default_surrogate if surrogate is None else surrogate
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
        if "network" not in self.defaults:
            return self.target.default_network(surrogate)
        if surrogate != "energy":
            raise ValueError(
                f"target {self.name} has no network for a {surrogate} surrogate: give it a "
                "default_network(surrogate) method (see uqmcmc.workflows.System), or use "
                "the energy surrogate"
            )
        from uqmcmc.nets import MLP
        from uqmcmc.uq.registry import Network

        shape = self.require_shape()
        return Network(MLP, {"in_features": shape, "hidden": DEFAULT_HIDDEN, "quadratic": True},
                       small={"hidden": DEFAULT_SMALL})  # fmt: skip

    @property
    def headline_observables(self) -> tuple[str, ...]:
        """The observables a report leads with (the bias decomposition, the noise sweep, the
        cost per effective sample): the target's ``headline_observables``, else its first
        two ``compared_observables``, else ``("sd",)`` (the Stein term of the default
        observables).

        Examples
        --------
        >>> System.load("phi4", {"L": 4, "beta": 0.5, "g": 1.0}).headline_observables
        ('sd', 'abs_m', 'action_density')
        >>> System.load("lj", {"N": 4}).headline_observables
        ('energy', 'rg')
        """
        own = getattr(self.target, "headline_observables", None)
        if own:
            return tuple(own)
        compared = getattr(self.target, "compared_observables", None)
        if compared and "observables" not in self.defaults:
            return tuple(compared[:2])
        return ("sd",)

    @property
    def sampler(self) -> str:
        """The exact reference sampler: ``"checkerboard"`` or ``"mala"``."""
        return "mala" if "reference" in self.defaults else "checkerboard"

    def reference(self, step_size: float | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`uqmcmc.mcmc.run_chains` for exact reference chains:
        ``algorithm`` (with ``step_size`` and ``target_acceptance`` when the step is tuned in
        warm-up) and the ``attrs`` that say what sampled.

        ``step_size`` is the checkerboard's proposal half-width (default 1) or MALA's fixed
        step (default: tuned in warm-up).

        Examples
        --------
        >>> from uqmcmc.targets import LJCluster
        >>> sorted(System.of(LJCluster(N=4)).reference())
        ['algorithm', 'attrs', 'step_size', 'target_acceptance']
        """
        from uqmcmc.mcmc import ExactDelta, checkerboard, mala

        if self.sampler == "checkerboard":
            eps = 1.0 if step_size is None else float(step_size)
            return {
                "algorithm": checkerboard(self.target, eps),
                "attrs": {"sampler": "checkerboard", "estimator": "exact", "step_size": eps},
            }
        est = ExactDelta(self.target)
        attrs = {"sampler": "mala", "estimator": "exact", "acceptance": "none"}
        if step_size is not None:
            return {"algorithm": mala(est, float(step_size), acceptance="none"), "attrs": attrs}
        return {
            "algorithm": lambda eps: mala(est, eps, acceptance="none"),
            "step_size": 0.01,
            "target_acceptance": REFERENCE_ACCEPTANCE,
            "attrs": attrs,
        }

    def describe_defaults(self, surrogates: bool = False) -> list[str]:
        """One line per default used (empty if the target supplies everything); those of
        the surrogate and its network only with ``surrogates`` (a workflow that trains one).

        Examples
        --------
        >>> from uqmcmc.targets import LJCluster
        >>> System.of(LJCluster(N=4)).describe_defaults()
        ['exact reference: MALA tuned to acceptance 0.6']
        """
        skip = () if surrogates else ("surrogate", "network")
        return [DEFAULTS[d] for d in self.defaults if d not in skip]

    def table_observables(self, posterior: Mapping[str, np.ndarray]) -> list[str]:
        """The observables a summary table shows: the target's ``compared_observables`` that
        the posterior has, else every scalar and every component of a vector of at most
        :data:`~uqmcmc.diagnostics.runs.MAX_COMPONENTS` (as the diagnostics split them).

        Examples
        --------
        >>> post = {"x": np.zeros((2, 5, 3)), "x2": np.zeros((2, 5, 3))}
        >>> System.of(object.__new__(type("T", (), {"action": abs, "grad": abs})),
        ...           shape=(3,)).table_observables(post)
        ['x[0]', 'x[1]', 'x[2]', 'x2[0]', 'x2[1]', 'x2[2]']
        """
        compared = getattr(self.target, "compared_observables", None)
        if compared:
            return [n for n in compared if n in posterior and np.ndim(posterior[n]) == 2]
        return available(posterior)

    def untabulated(self, posterior: Mapping[str, np.ndarray]) -> list[str]:
        """The observables a table leaves out because they are too long (more than
        :data:`~uqmcmc.diagnostics.runs.MAX_COMPONENTS` components, or arrays): they are in
        the run's ArviZ data.

        Examples
        --------
        >>> post = {"x": np.zeros((2, 5, 39)), "e": np.zeros((2, 5))}
        >>> System.of(object.__new__(type("T", (), {"action": abs, "grad": abs}))).untabulated(post)
        ['x']
        """
        if getattr(self.target, "compared_observables", None):
            return []
        shown = {name.partition("[")[0] for name in available(posterior)}
        return [name for name in posterior if name != "position" and name not in shown]


def settings_system(cfg: Any, overrides: Mapping[str, Any] | None = None) -> System:
    """The :class:`System` of a workflow's settings ``cfg`` (fields ``target``, ``params``,
    ``shape`` and phi^4's ``L``, ``beta``, ``g``), with ``overrides`` of its parameters (e.g.
    the training set's temperature), built once per settings: a user's module is imported once.

    Examples
    --------
    >>> from uqmcmc.workflows import ExactConfig
    >>> cfg = ExactConfig(L=4)
    >>> settings_system(cfg).params["L"], settings_system(cfg, {"beta": 0.2}).params["beta"]
    (4, 0.2)
    >>> settings_system(cfg) is settings_system(cfg)
    True
    """
    if cfg.target == "phi4":
        spec, params, shape = "phi4", {"L": cfg.L, "beta": cfg.beta, "g": cfg.g}, None
    else:
        spec, params, shape = cfg.target, cfg.params, cfg.shape
    params = {**params, **(overrides or {})}
    key = (spec, repr(sorted(params.items())), shape)
    cache = cfg.__dict__.setdefault("_systems", {})
    if key not in cache:
        cache[key] = System.load(spec, params, shape=shape)
    return cache[key]


def check_target_settings(cfg: Any, default: Any) -> System:
    """Check a workflow's target settings (``target``, ``params``, ``shape``; phi^4's ``L``,
    ``beta``, ``g`` only for phi^4, where ``default`` holds their defaults) and load the target;
    returns its :class:`System`. Raises :class:`~uqmcmc._validation.SettingError`.

    Examples
    --------
    >>> from uqmcmc.workflows import ExactConfig
    >>> check_target_settings(ExactConfig(target="lj", L=4), ExactConfig())
    Traceback (most recent call last):
    ...
    ValueError: L, beta and g are phi^4's settings: give the parameters of 'lj' in params
    """
    from uqmcmc._validation import SettingError
    from uqmcmc.workflows.exact import check_lattice

    if not isinstance(cfg.target, str):
        raise SettingError("{0} must be a name or 'module:Name', got {1!r}", "target",
                           cfg.target)  # fmt: skip
    if not isinstance(cfg.params, dict):
        raise SettingError("{0} must be a table of parameters, got {1!r}", "params",
                           cfg.params)  # fmt: skip
    if cfg.shape is not None:
        if isinstance(cfg.shape, str | bytes) or not all(
            isinstance(n, int | np.integer) and not isinstance(n, bool) for n in cfg.shape
        ):
            raise SettingError("{0} must be a list of sizes, got {1!r}", "shape", cfg.shape)
        cfg.shape = tuple(int(n) for n in cfg.shape)
    if cfg.target == "phi4":
        check_lattice(cfg.L, cfg.beta, cfg.g)
        if cfg.params:
            raise SettingError(
                "phi^4's parameters are set with L, beta and g (--L, --beta, --g), not "
                "{0} {1}", "params", sorted(cfg.params),
            )  # fmt: skip
    elif (cfg.L, cfg.beta, cfg.g) != (default.L, default.beta, default.g):
        raise SettingError(
            "L, beta and g are phi^4's settings: give the parameters of {0!r} in {1}",
            cfg.target, "params",
        )  # fmt: skip
    try:
        system = settings_system(cfg)
        system.require_shape()
    except (TypeError, ValueError) as err:
        raise SettingError("{0}", err) from None
    return system
