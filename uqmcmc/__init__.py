"""uqmcmc: Monte Carlo with machine-learned actions and forces, and the uncertainty they bring.

Layers (imports only point down): ``targets`` -> ``nets`` -> ``uq`` -> ``mcmc`` ->
``diagnostics`` -> ``workflows`` -> ``cli``.
"""

from uqmcmc import mcmc, targets

__version__ = "0.1.0"

__all__ = ["targets", "mcmc", "__version__"]
