"""What the registry (:mod:`uqmcmc.uq.registry`) holds per backend: the settings its builders
read (:class:`BackendSettings`) and how to build and fit it (:class:`BackendSpec`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from uqmcmc._validation import positive, positive_int
from uqmcmc.uq.base import UQBackend

__all__ = ["BackendSettings", "BackendSpec", "Network"]

#: A backend's name: a letter, then letters, digits, "_" or "-".
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Network:
    """The network the built-in backends build: ``cls(**kwargs, rngs=...)``.

    ``cls`` follows the uqmcmc network convention (``features``, ``readout``, ``reduce``: see
    :class:`uqmcmc.nets.MLP`). The BNN, whose cost grows with the number of weights, builds
    ``cls(**{**kwargs, **small})``; MC dropout builds ``cls(**{**kwargs, **dropout})``. The
    default (:meth:`default`) is the RCNN surrogate of ``grad S`` of phi^4
    (:class:`uqmcmc.nets.RCNN`); a target names its own with ``default_network(surrogate)``
    (see :class:`uqmcmc.workflows.System`).

    Examples
    --------
    >>> from uqmcmc.nets import MLP
    >>> net = Network(MLP, {"in_features": 2, "hidden": (16,)}, small={"hidden": (8,)})
    >>> net.kwargs_for("bnn"), net.kwargs_for("dropout")["dropout"]
    ({'in_features': 2, 'hidden': (8,)}, 0.05)
    >>> Network.default().cls.__name__
    'RCNN'
    """

    cls: type
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    small: Mapping[str, Any] = field(default_factory=dict)
    dropout: Mapping[str, Any] = field(default_factory=lambda: {"dropout": 0.05})

    @classmethod
    def default(cls) -> Network:
        """The RCNN of ``grad S`` (a small one, 8 channels and one block, for the BNN)."""
        from uqmcmc.nets import RCNN

        return cls(RCNN, {}, small={"channels": 8, "depth": 1})

    def fitted(self, x: Any, energy: Any = None) -> Network:
        """This network with the constructor arguments its class derives from the training
        configurations (and energies): ``cls.data_kwargs(x, energy, **kwargs)`` when the class
        has it (e.g. :class:`~uqmcmc.nets.AtomisticEnergyNet`'s descriptor scaling), else
        itself.

        Examples
        --------
        >>> import jax
        >>> from uqmcmc.nets import AtomisticEnergyNet
        >>> x = jax.random.normal(jax.random.key(0), (10, 4, 3))
        >>> net = Network(AtomisticEnergyNet, {"d": 3}).fitted(x)
        >>> sorted(net.kwargs)
        ['d', 'descriptor_mean', 'descriptor_std']
        >>> Network.default().fitted(x) == Network.default()
        True
        """
        derive = getattr(self.cls, "data_kwargs", None)
        if derive is None:
            return self
        kwargs = {**self.kwargs, **derive(x, energy, **self.kwargs)}
        return dataclasses.replace(self, kwargs=kwargs)

    def kwargs_for(self, variant: str = "plain") -> dict[str, Any]:
        """The constructor arguments of one variant: ``"plain"``, ``"bnn"`` (with
        :attr:`small`) or ``"dropout"`` (with :attr:`dropout`)."""
        extra = {"bnn": self.small, "dropout": self.dropout}.get(variant, {})
        return {**self.kwargs, **extra}


@dataclass(frozen=True)
class BackendSettings:
    """The knobs the backend builders and their fit settings read.

    Parameters
    ----------
    n_members
        Members of the deep ensemble (``>= 2``).
    epochs
        Training epochs of every network trained by gradient descent (all but the BNN).
    svi_steps
        SVI steps of the BNN.
    gp_steps
        Adam steps on the deep kernel's collapsed GP bound.
    learning_rate
        Peak learning rate of the cosine-decayed Adam
        (:func:`uqmcmc.uq.training.cosine_adam`) that trains the networks.
    network
        The network every built-in backend builds (:class:`Network`); default
        :meth:`Network.default`, the RCNN of ``grad S``.
    forces
        Train energy networks on energies and forces: the backends that can
        (:attr:`BackendSpec.forces`) fit with ``loss="energy_force"``
        (:func:`uqmcmc.uq.losses.energy_force_loss`) on labels packed by
        :func:`~uqmcmc.uq.losses.energy_force_labels`; the others on energies.

    Examples
    --------
    >>> BackendSettings().n_members, BackendSettings(epochs=3).epochs
    (10, 3)
    >>> BackendSettings(n_members=1)
    Traceback (most recent call last):
    ...
    ValueError: n_members must be an integer >= 2, got 1
    """

    n_members: int = 10
    epochs: int = 100
    svi_steps: int = 5000
    gp_steps: int = 1000
    learning_rate: float = 3e-2
    network: Network | None = None
    forces: bool = False

    @property
    def net(self) -> Network:
        """:attr:`network`, or :meth:`Network.default` when unset."""
        return self.network if self.network is not None else Network.default()

    def __post_init__(self) -> None:
        positive_int("n_members", self.n_members, minimum=2)
        for name in ("epochs", "svi_steps", "gp_steps"):
            positive_int(name, getattr(self, name))
        positive("learning_rate", self.learning_rate)


def _no_settings(settings: BackendSettings) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class BackendSpec:
    """How to build and fit one backend.

    Parameters
    ----------
    name
        The registry name (a letter, then letters, digits, ``_`` or ``-``); the built
        backend's :attr:`~uqmcmc.uq.base.UQBackend.name` should be the same.
    build
        ``build(settings) -> backend``: an UNFITTED :class:`~uqmcmc.uq.base.UQBackend`.
    fit_settings
        ``fit_settings(settings) -> dict``: the keyword arguments of its ``fit`` besides
        ``key`` (default: none).
    description
        One line for listings.
    backend_cls
        The backend class (for :func:`load` and :func:`backend_class`), or a zero-argument
        callable returning it (to import it only when needed); by default the class of
        ``build(BackendSettings())``.
    forces
        Whether, with ``settings.forces``, the backend is fitted on energies and forces
        (labels from :func:`~uqmcmc.uq.losses.energy_force_labels`) instead of energies.

    Examples
    --------
    >>> from uqmcmc.uq.last_layer import BayesianLastLayer
    >>> from uqmcmc.nets import MLP
    >>> spec = BackendSpec(
    ...     "mlp_last_layer",
    ...     build=lambda s: BayesianLastLayer(MLP, {"in_features": 1, "hidden": [8]}),
    ...     fit_settings=lambda s: {"epochs": s.epochs, "progress": False},
    ...     description="Bayesian last layer on a small MLP",
    ... )
    >>> spec.fit_settings(BackendSettings(epochs=5))
    {'epochs': 5, 'progress': False}
    >>> BackendSpec("no/slash", build=spec.build)
    Traceback (most recent call last):
    ...
    ValueError: backend name must be a letter followed by letters, digits, '_' or '-', got ...
    """

    name: str
    build: Callable[[BackendSettings], UQBackend]
    fit_settings: Callable[[BackendSettings], dict[str, Any]] = _no_settings
    description: str = ""
    backend_cls: type[UQBackend] | Callable[[], type[UQBackend]] | None = field(
        default=None, compare=False
    )
    forces: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                "backend name must be a letter followed by letters, digits, '_' or '-', "
                f"got {self.name!r}"
            )
        for attr in ("build", "fit_settings"):
            if not callable(getattr(self, attr)):
                raise ValueError(
                    f"BackendSpec.{attr} must be callable, got {getattr(self, attr)!r}"
                )
        if self.backend_cls is not None and not callable(self.backend_cls):
            raise ValueError(f"BackendSpec.backend_cls must be a class, got {self.backend_cls!r}")
