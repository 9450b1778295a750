"""The built-in backends of :mod:`uqmcmc.uq.registry`: the compare workflow's.

Each is built with the network of :attr:`~uqmcmc.uq.registry.BackendSettings.network`: by
default the RCNN surrogate of ``grad S`` (:class:`uqmcmc.nets.RCNN`, the 3 x 3 stem and 1 x 1
blocks that reach ~1% relative RMSE on phi^4), else the target's own (an energy network for
energy surrogates); it is fitted with the workflow's
settings: ``epochs`` of cosine-decayed Adam from ``learning_rate`` (SVI for the BNN), read
from :class:`~uqmcmc.uq.registry.BackendSettings`. :data:`SPECS` lists them in report order;
the registry adds them before anything else. Every builder imports its backend module when
called.

Examples
--------
>>> [spec.name for spec in SPECS]
['ensemble', 'dropout', 'last_layer', 'bnn', 'deep_kernel', 'paper_ensemble']
>>> from uqmcmc.uq.registry import BackendSettings
>>> SPECS[3].fit_settings(BackendSettings(svi_steps=200))
{'method': 'svi', 'num_samples': 50, 'svi_steps': 200}
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.registry import BackendSettings, BackendSpec

__all__ = ["SPECS"]


def _lazy(module: str, attr: str) -> Callable[[], type]:
    return lambda: getattr(importlib.import_module(module), attr)


def _trained(settings: BackendSettings, **extra: Any) -> dict[str, Any]:
    """Fit settings of a network trained by gradient descent: ``epochs`` of cosine-decayed
    Adam from ``learning_rate``, no progress bar."""
    from uqmcmc.uq.training import cosine_adam

    optimizer = cosine_adam(settings.learning_rate)
    return {"epochs": settings.epochs, "optimizer": optimizer, "progress": False, **extra}


def _loss(settings: BackendSettings) -> str:
    """The training loss: on energies and forces when ``settings.forces``, else MSE."""
    return "energy_force" if settings.forces else "mse"


def _with_forces(settings: BackendSettings) -> dict[str, Any]:
    """:func:`_trained`, on energies and forces when ``settings.forces`` (the last layer takes
    the loss in ``fit``)."""
    return _trained(settings, **({"loss": "energy_force"} if settings.forces else {}))


def _ensemble(settings: BackendSettings) -> UQBackend:
    from uqmcmc.uq.ensemble import DeepEnsemble

    net = settings.net
    return DeepEnsemble(net.cls, net.kwargs_for(), n_members=settings.n_members,
                        loss=_loss(settings))  # fmt: skip


def _dropout(settings: BackendSettings) -> UQBackend:
    # 20 fixed masks: every mean-mode MALA step evaluates all of them twice
    from uqmcmc.uq.dropout import MCDropout

    net = settings.net
    return MCDropout(net.cls, net.kwargs_for("dropout"), n_masks=20, loss=_loss(settings))


def _last_layer(settings: BackendSettings) -> UQBackend:
    from uqmcmc.uq.last_layer import BayesianLastLayer

    net = settings.net
    return BayesianLastLayer(net.cls, net.kwargs_for())


def _bnn(settings: BackendSettings) -> UQBackend:
    from uqmcmc.uq.bnn import NumPyroBNN

    net = settings.net
    return NumPyroBNN(net.cls, net.kwargs_for("bnn"))


def _bnn_fit(settings: BackendSettings) -> dict[str, Any]:
    # 50 stored posterior draws: every mean-mode MALA step evaluates all of them twice
    return {"method": "svi", "num_samples": 50, "svi_steps": settings.svi_steps}


def _deep_kernel_fit(settings: BackendSettings) -> dict[str, Any]:
    return _trained(settings, gp_steps=settings.gp_steps)


def _deep_kernel(settings: BackendSettings) -> UQBackend:
    # 256 random features: the draws' covariance is exact for any count, and the excess
    # kurtosis of a phi^4 MALA step's Delta S draws is within +-0.06 of zero at 256 and 512;
    # the draws-mode step costs 0.4 times that of the library default (768).
    from uqmcmc.uq.deep_kernel import DeepKernelRegression

    net = settings.net
    return DeepKernelRegression(net.cls, net.kwargs_for(), rff_features=256)


#: The network and training protocol of Tzivrailis, Rosso, Kawasaki, "Uncertainty in AI-driven
#: Monte Carlo simulations" (arXiv:2506.14594): a plain residual CNN (3 x 3 convolutions, ReLU)
#: trained with MSE by Adam at 1e-3, batch 24, 50 epochs, on the 180 training configurations.
PAPER_NET = {"channels": 16, "depth": 2, "kernel_size": 3, "activation": "relu"}


def _paper_ensemble(settings: BackendSettings) -> UQBackend:
    from uqmcmc.nets import RCNN
    from uqmcmc.uq.ensemble import PaperEnsemble

    return PaperEnsemble(RCNN, dict(PAPER_NET), n_members=settings.n_members)


def _paper_fit(settings: BackendSettings) -> dict[str, Any]:
    import optax

    return {"epochs": 50, "batch_size": 24, "optimizer": optax.adam(1e-3), "progress": False}


#: The built-in specs, in report order.
SPECS: tuple[BackendSpec, ...] = (
    BackendSpec(
        "ensemble", _ensemble, _trained,
        "deep ensemble of n_members networks (RCNNs by default)",
        _lazy("uqmcmc.uq.ensemble", "DeepEnsemble"), forces=True,
    ),
    BackendSpec(
        "dropout", _dropout, _trained, "MC dropout (rate 0.05, 20 fixed masks) over the network",
        _lazy("uqmcmc.uq.dropout", "MCDropout"), forces=True,
    ),
    BackendSpec(
        "last_layer", _last_layer, _with_forces, "Bayesian last layer on the trained network",
        _lazy("uqmcmc.uq.last_layer", "BayesianLastLayer"), forces=True,
    ),
    BackendSpec(
        "bnn", _bnn, _bnn_fit,
        "NumPyro BNN (mean-field SVI, 50 posterior draws) over a small network",
        _lazy("uqmcmc.uq.bnn", "NumPyroBNN"),
    ),
    BackendSpec(
        "deep_kernel", _deep_kernel, _deep_kernel_fit,
        "sparse GP (256 random features per draw) on the trained network's features",
        _lazy("uqmcmc.uq.deep_kernel", "DeepKernelRegression"),
    ),
    BackendSpec(
        "paper_ensemble", _paper_ensemble, _paper_fit,
        "ensemble of n_members plain residual CNNs trained as in Tzivrailis et al. (MSE, "
        "Adam 1e-3, batch 24, 50 epochs)",
        _lazy("uqmcmc.uq.ensemble", "PaperEnsemble"),
    ),
)  # fmt: skip
