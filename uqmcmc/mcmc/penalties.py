"""Penalties of the noise-aware acceptance: small named objects ``var -> (u, valid)``.

The kernels accept with ``log a = min(0, -Delta S-hat - u + log q(x | x') - log q(x' | x))``; the
penalty turns the variance ``var`` of the estimate ``Delta S-hat`` into ``u`` and says where it is
``valid`` (an invalid penalty rejects the move and is counted in ``Info.out_of_range``):

:class:`NoPenalty` (``"none"``)
    ``u = 0``. With a noisy estimate the noise inflates acceptance and biases observables.
:class:`CeperleyDewing` (``"ceperley-dewing"``)
    ``u = sigma**2 / 2`` with ``sigma**2`` the variance of the estimate (exact on average when
    ``Delta S-hat ~ N(Delta S, sigma**2)`` with fresh noise at every evaluation; Ceperley &
    Dewing, J. Chem. Phys. 110, 9812, 1999).
:class:`CeperleyDewingEstimated` (``"ceperley-dewing-estimated"``)
    The variance is itself estimated from ``n`` draws (``chi**2``, the sample variance of their
    mean): ``u_B = -ln 0F1(; m; -m chi**2 / 2)`` with ``m = (n - 1) / 2``, so that ``exp(-u_B)``
    is an unbiased estimator of ``exp(-sigma**2/2)`` (:mod:`uqmcmc.mcmc.hyp0f1`). Valid only
    below the first zero of ``0F1`` (and where float32 evaluates it accurately, see
    :func:`~uqmcmc.mcmc.hyp0f1.estimated_penalty_limit`); beyond, the move is rejected. The rule
    is approximate (a detailed-balance error of about 1.5% at ``n = 5``, ``sigma = 1`` was
    measured).
:class:`Switch`
    A penalty where a (possibly traced) flag ``on`` holds, none elsewhere: the naive and the
    penalised chain side by side under :func:`~uqmcmc.mcmc.batched`.

:func:`as_penalty` is the one place a rule name (or an object) becomes a penalty and is
validated. All penalties are immutable JAX pytrees (``Switch.on`` is a leaf, ``n_draws`` static),
so they can be passed through ``jit`` and ``vmap``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Protocol

import jax
import jax.numpy as jnp

from uqmcmc.mcmc.hyp0f1 import estimated_penalty

Array = jax.Array

__all__ = [
    "RULES",
    "Penalty",
    "NoPenalty",
    "CeperleyDewing",
    "CeperleyDewingEstimated",
    "Switch",
    "as_penalty",
]

#: The acceptance rule names.
RULES = ("none", "ceperley-dewing", "ceperley-dewing-estimated")


class Penalty(Protocol):
    """What the kernels call: ``penalty(var) -> (u, valid)``.

    The penalties here also carry a ``name`` (the rule name); any other callable of this
    signature works as a penalty too.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> def quarter(var):  # a custom penalty: a function is enough
    ...     return 0.25 * var, var >= 0
    >>> u, valid = as_penalty(quarter)(jnp.asarray(2.0))
    >>> float(u), bool(valid)
    (0.5, True)
    """

    def __call__(self, var: Array) -> tuple[Array, Array]: ...


def _always_valid(var: Array) -> Array:
    return jnp.ones_like(var, dtype=bool)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class NoPenalty:
    """The naive rule ``"none"``: ``u = 0`` (biased when the estimate is noisy).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> u, valid = NoPenalty()(jnp.array([0.0, 2.0]))
    >>> u.tolist(), valid.tolist(), NoPenalty().name
    ([0.0, 0.0], [True, True], 'none')
    """

    name: ClassVar[str] = "none"

    def __call__(self, var: Array) -> tuple[Array, Array]:
        return jnp.zeros_like(var), _always_valid(var)

    def tree_flatten(self) -> tuple[tuple, None]:
        return (), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: tuple) -> NoPenalty:
        return cls()


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class CeperleyDewing:
    """The Ceperley-Dewing penalty for a known variance: ``u = var / 2``.

    Exact on average when ``Delta S-hat ~ N(Delta S, var)`` with fresh noise at every
    evaluation; no penalty for an exact estimate (``var = 0``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> u, valid = CeperleyDewing()(jnp.array([0.0, 0.5, 2.0]))
    >>> u.tolist(), bool(valid.all()), CeperleyDewing().name
    ([0.0, 0.25, 1.0], True, 'ceperley-dewing')
    """

    name: ClassVar[str] = "ceperley-dewing"

    def __call__(self, var: Array) -> tuple[Array, Array]:
        return 0.5 * var, _always_valid(var)

    def tree_flatten(self) -> tuple[tuple, None]:
        return (), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: tuple) -> CeperleyDewing:
        return cls()


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class CeperleyDewingEstimated:
    """The Ceperley-Dewing penalty for a variance estimated from ``n_draws`` draws.

    ``u_B = -ln 0F1(; m; -m var / 2)``, ``m = (n_draws - 1) / 2``
    (:func:`~uqmcmc.mcmc.hyp0f1.estimated_penalty`); ``valid`` is ``False`` (and ``u = inf``)
    beyond :func:`~uqmcmc.mcmc.hyp0f1.estimated_penalty_limit`.

    Parameters
    ----------
    n_draws
        Draws behind the sample variance (the estimator's ``n_draws``), an integer ``>= 2``
        (checked here; static under ``jit``).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> penalty = CeperleyDewingEstimated(10)
    >>> u, valid = penalty(jnp.array([0.1, 6.0]))  # 6 is beyond the range at n = 10
    >>> round(float(u[0]), 5), valid.tolist(), penalty.name
    (0.05023, [True, False], 'ceperley-dewing-estimated')
    >>> CeperleyDewingEstimated(1)
    Traceback (most recent call last):
        ...
    ValueError: acceptance='ceperley-dewing-estimated' needs a sample variance from n_draws >= 2
    draws (an estimator with mode='draws' or NoisyOracle(n_draws=...)), got n_draws=1
    """

    n_draws: int
    name: ClassVar[str] = "ceperley-dewing-estimated"

    def __post_init__(self) -> None:
        n = self.n_draws
        if n is None or isinstance(n, bool) or int(n) != n or n < 2:
            raise ValueError(
                "acceptance='ceperley-dewing-estimated' needs a sample variance from n_draws >= 2 "
                f"draws (an estimator with mode='draws' or NoisyOracle(n_draws=...)), got "
                f"n_draws={n!r}"
            )
        object.__setattr__(self, "n_draws", int(n))

    def __call__(self, var: Array) -> tuple[Array, Array]:
        return estimated_penalty(var, n=self.n_draws)

    def tree_flatten(self) -> tuple[tuple, int]:
        return (), self.n_draws

    @classmethod
    def tree_unflatten(cls, aux: int, children: tuple) -> CeperleyDewingEstimated:
        return cls(aux)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False)
class Switch:
    """``penalty`` where ``on``, no penalty (``"none"``) elsewhere.

    ``on`` may be traced (it is the pytree's leaf), so the naive and penalised versions of one
    kernel run side by side in one compiled program: :func:`~uqmcmc.mcmc.batched` over
    ``on = [False, True]``.

    Parameters
    ----------
    penalty
        A penalty (e.g. ``as_penalty(rule, n_draws)``).
    on
        Boolean (array, possibly traced): where the penalty applies.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> var = jnp.asarray(2.0)
    >>> pair = Switch(CeperleyDewing(), jnp.array([False, True]))
    >>> u, valid = jax.vmap(lambda p: p(var))(pair)  # vmapped over the leaf ``on``
    >>> u.tolist(), valid.tolist(), pair.name
    ([0.0, 1.0], [True, True], 'switch(ceperley-dewing)')
    >>> u, valid = Switch(as_penalty("ceperley-dewing-estimated", 5), False)(jnp.asarray(99.0))
    >>> float(u), bool(valid)  # off: out of the estimated rule's range does not matter
    (0.0, True)
    """

    penalty: Penalty
    on: Array | bool

    def __post_init__(self) -> None:
        if not callable(self.penalty):
            raise TypeError(
                f"Switch needs a penalty (e.g. as_penalty(rule, n_draws)), got {self.penalty!r}"
            )

    @property
    def name(self) -> str:
        """``switch(<name of the penalty>)``."""
        return f"switch({getattr(self.penalty, 'name', 'custom')})"

    def __call__(self, var: Array) -> tuple[Array, Array]:
        u, valid = self.penalty(var)
        return jnp.where(self.on, u, 0.0), jnp.where(self.on, valid, True)

    def tree_flatten(self) -> tuple[tuple, None]:
        return (self.penalty, self.on), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: tuple) -> Switch:
        out = object.__new__(cls)  # no check: jax rebuilds it with placeholder leaves
        object.__setattr__(out, "penalty", children[0])
        object.__setattr__(out, "on", children[1])
        return out


_BY_NAME: dict[str, Callable[[int | None], Penalty]] = {
    "none": lambda n_draws: NoPenalty(),
    "ceperley-dewing": lambda n_draws: CeperleyDewing(),
    "ceperley-dewing-estimated": CeperleyDewingEstimated,
}


def as_penalty(acceptance: str | Penalty, n_draws: int | None = None) -> Penalty:
    """The penalty of an acceptance rule name, or ``acceptance`` itself if it is a penalty.

    The one place a rule is validated.

    Parameters
    ----------
    acceptance
        ``"none"``, ``"ceperley-dewing"`` or ``"ceperley-dewing-estimated"`` (see
        :data:`RULES`); or a penalty (:class:`NoPenalty`, :class:`CeperleyDewing`,
        :class:`CeperleyDewingEstimated`, :class:`Switch`, or any callable
        ``var -> (u, valid)``), returned unchanged.
    n_draws
        Draws behind the sample variance (the estimator's ``n_draws``); the estimated rule
        needs ``n_draws >= 2``, the others ignore it.

    Returns
    -------
    Penalty
        A callable ``var -> (u, valid)``.

    Raises
    ------
    ValueError
        For an unknown rule name, or the estimated rule without ``n_draws >= 2``.

    Examples
    --------
    >>> as_penalty("ceperley-dewing"), as_penalty("ceperley-dewing-estimated", n_draws=4)
    (CeperleyDewing(), CeperleyDewingEstimated(n_draws=4))
    >>> penalty = Switch(CeperleyDewing(), True)
    >>> as_penalty(penalty) is penalty
    True
    >>> as_penalty("barker")
    Traceback (most recent call last):
        ...
    ValueError: acceptance must be one of ['none', 'ceperley-dewing', 'ceperley-dewing-estimated'],
    got 'barker'
    """
    if callable(acceptance):
        return acceptance
    if acceptance not in RULES:
        raise ValueError(f"acceptance must be one of {list(RULES)}, got {acceptance!r}")
    return _BY_NAME[acceptance](n_draws)
