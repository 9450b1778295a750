"""Step-size adaptation of :func:`~uqmcmc.mcmc.run_chains`, shaped like a BlackJAX adaptation.

A :class:`StepSizeAdaptation` is ``init(step_size) -> state``, ``update(state, info) -> state``
(one call per warm-up step, with the Info of all chains) and ``final(state) -> step_size``,
around BlackJAX's :func:`blackjax.adaptation.step_size.dual_averaging_adaptation`.

One step size serves every chain and every variant of a batched algorithm
(:func:`~uqmcmc.mcmc.batched`): the dual averaging sees the mean acceptance over chains AND
variants. For the naive/penalised pair of ``uqmcmc compare`` that is one compromise step for
two rules with different acceptance; per-variant tuning would need a step size per variant in
the kernel (a batched ``step_size``), which the algorithms do not take today.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from blackjax.adaptation.step_size import (
    DualAveragingAdaptationState,
    dual_averaging_adaptation,
)

from uqmcmc._validation import probability

Array = jax.Array

__all__ = ["StepSizeAdaptation", "dual_averaging", "fixed_step_size"]


class StepSizeAdaptation(NamedTuple):
    """A step-size adaptation: ``init``, ``update``, ``final`` (BlackJAX's shape).

    init
        ``init(step_size) -> DualAveragingAdaptationState``.
    update
        ``update(state, info) -> state`` from the Info of all chains of one warm-up step;
        ``None`` when the step size is fixed (then ``tunes`` is ``False``).
    final
        ``final(state) -> step_size``: the step size to sample with after the warm-up.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from uqmcmc.mcmc.metropolis import NoisyInfo
    >>> adapt = dual_averaging(0.6)
    >>> state = adapt.init(jnp.asarray(0.1))
    >>> info = NoisyInfo(*(jnp.ones(4),) * 7)  # every chain accepted: step up
    >>> state = adapt.update(state, info)
    >>> adapt.tunes, bool(adapt.current(state) > 0.1), adapt.final(state).shape
    (True, True, ())
    """

    init: Callable[[Any], DualAveragingAdaptationState]
    update: Callable[[DualAveragingAdaptationState, Any], DualAveragingAdaptationState] | None
    final: Callable[[DualAveragingAdaptationState], Any]

    @property
    def tunes(self) -> bool:
        """Whether the warm-up adapts the step size."""
        return self.update is not None

    def current(self, state: DualAveragingAdaptationState) -> Array:
        """The step size of the next warm-up step."""
        return jnp.exp(state.log_step_size)


def dual_averaging(target_acceptance: float) -> StepSizeAdaptation:
    """Dual averaging towards ``target_acceptance``, on the mean acceptance of each step.

    The mean is over every leading axis of ``info.acceptance_rate``: the chains, and the
    variants of a batched algorithm (one step size for all of them).

    Parameters
    ----------
    target_acceptance
        Target mean acceptance, strictly between 0 and 1.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from blackjax.mcmc.mala import MALAInfo
    >>> adapt = dual_averaging(0.5)
    >>> state = adapt.init(jnp.asarray(1.0))
    >>> for _ in range(20):  # nothing is ever accepted: the step shrinks
    ...     state = adapt.update(state, MALAInfo(jnp.zeros((8, 2)), jnp.zeros((8, 2), bool)))
    >>> bool(adapt.final(state) < 1.0)
    True
    """
    probability("target_acceptance", target_acceptance)
    da_init, da_update, da_final = dual_averaging_adaptation(target_acceptance)

    def update(state: DualAveragingAdaptationState, info: Any) -> DualAveragingAdaptationState:
        return da_update(state, jnp.mean(info.acceptance_rate))

    return StepSizeAdaptation(da_init, update, da_final)


def fixed_step_size(step_size: Any) -> StepSizeAdaptation:
    """No adaptation: ``final`` returns ``step_size``.

    The state is a (never updated) dual-averaging state, so tuned and fixed runs carry the same
    structure through the compiled loop.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> adapt = fixed_step_size(jnp.asarray(0.3))
    >>> adapt.tunes, round(float(adapt.final(adapt.init(None))), 6)
    (False, 0.3)
    """
    da_init, _, _ = dual_averaging_adaptation(0.5)

    def init(_: Any) -> DualAveragingAdaptationState:
        return da_init(1.0)

    return StepSizeAdaptation(init, None, lambda _state: step_size)
