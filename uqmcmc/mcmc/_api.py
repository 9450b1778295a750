"""BlackJAX's access pattern for a kernel module: one name that is callable and has the parts.

``blackjax.mala(logdensity_fn, step_size)`` builds the algorithm, ``blackjax.mala.init`` and
``blackjax.mala.build_kernel`` are the low-level pieces (``GenerateSamplingAPI`` in
``blackjax/__init__.py``). :class:`SamplingAPI` does the same for a module with ``init``,
``build_kernel`` and ``as_top_level_api``; every other attribute of the module (``RMHState``,
``RANDOM_WALK``, ...) is forwarded, so the object shadowing the submodule in the package
namespace (``uqmcmc.mcmc.mala``) reads like the module.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from blackjax.base import SamplingAlgorithm

__all__ = ["SamplingAPI"]


class SamplingAPI:
    """A kernel module as one callable: ``api(...)`` is its ``as_top_level_api(...)``.

    Parameters
    ----------
    module
        A module with ``init``, ``build_kernel`` and ``as_top_level_api``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc import ExactDelta, rmh
    >>> from uqmcmc.targets import Gaussian
    >>> est = ExactDelta(Gaussian(jnp.zeros(2), jnp.eye(2)))
    >>> alg = rmh(est, 0.5)  # the top-level API ...
    >>> state = rmh.init(jnp.ones(2), est)  # ... and the low-level pieces on one name
    >>> kernel = rmh.build_kernel("none")
    >>> rmh
    <SamplingAPI of uqmcmc.mcmc.rmh: rmh(...), rmh.init, rmh.build_kernel>
    >>> rmh.RMHState.__name__, rmh.as_top_level_api.__module__  # the module's other names
    ('NoisyState', 'uqmcmc.mcmc.rmh')
    """

    def __init__(self, module: ModuleType):
        self.module = module
        self.differentiable = module.as_top_level_api
        self.init = module.init
        self.build_kernel = module.build_kernel
        self.__name__ = module.__name__.rsplit(".", 1)[-1]
        self.__module__ = module.__name__
        self.__doc__ = module.as_top_level_api.__doc__
        self.__wrapped__ = module.as_top_level_api  # inspect.signature shows its parameters

    def __call__(self, *args: Any, **kwargs: Any) -> SamplingAlgorithm:
        return self.differentiable(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        module = self.__dict__.get("module")
        if module is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(module, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self.module)))

    def __repr__(self) -> str:
        name, module = self.__name__, self.module.__name__
        return f"<SamplingAPI of {module}: {name}(...), {name}.init, {name}.build_kernel>"
