"""Networks (flax.nnx) following the uqmcmc convention (see :class:`MLP`).

``features(x)`` gives the last hidden features, ``readout`` is a ``Linear(F, 1)``, ``__call__``
reads out and sums over sites when ``reduce == "sum"``; dropout layers are ``nnx.Dropout``.
"""

from uqmcmc.nets.atomistic import AtomisticEnergyNet, DescriptorScale
from uqmcmc.nets.energy import EnergyNet
from uqmcmc.nets.mlp import MLP, apply_readout, reduce_sites
from uqmcmc.nets.rcnn import ACTIVATIONS, RCNN

__all__ = [
    "MLP",
    "RCNN",
    "EnergyNet",
    "AtomisticEnergyNet",
    "DescriptorScale",
    "ACTIVATIONS",
    "apply_readout",
    "reduce_sites",
]
