"""Training data containers (labelled configurations in splits) and a toy regression set."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from uqmcmc._validation import positive, positive_int
from uqmcmc.uq.rng import as_key

Array = jax.Array

__all__ = ["Dataset", "Split", "gap_regression"]


class Split(NamedTuple):
    """Configurations ``x (n, *shape)`` with labels ``grad (n, *shape)`` and ``action (n,)``.

    ``len(split)`` is the number of configurations.

    Examples
    --------
    >>> import jax
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.5, 1.0)
    >>> x = jax.random.normal(jax.random.key(0), (6, 4, 4))
    >>> split = Split(x, target.grad(x), target.action(x))
    >>> len(split), split.grad.shape, split.action.shape
    (6, (6, 4, 4), (6,))
    """

    x: Array
    grad: Array
    action: Array

    def __len__(self) -> int:  # the number of configurations, not of fields
        return int(self.x.shape[0])


class Dataset(NamedTuple):
    """Train / validation / test splits and how they were made (``info``).

    ``val`` is ``None`` without a validation split.
    :func:`uqmcmc.workflows.training_data.make_dataset` builds one from exact chains.

    Examples
    --------
    >>> import jax
    >>> from uqmcmc.targets import Phi4
    >>> target = Phi4(4, 0.5, 1.0)
    >>> def labelled(x):
    ...     return Split(x, target.grad(x), target.action(x))
    >>> x = jax.random.normal(jax.random.key(0), (10, 4, 4))
    >>> data = Dataset(train=labelled(x[:8]), val=None, test=labelled(x[8:]), info={"L": 4})
    >>> len(data.train), data.val, len(data.test)
    (8, None, 2)
    """

    train: Split
    val: Split | None
    test: Split
    info: dict


def gap_regression(
    key: Array | int,
    n: int = 64,
    *,
    noise: float = 0.05,
    gap: tuple[float, float] = (-0.35, 0.35),
) -> tuple[Array, Array]:
    """A 1-D toy regression with a hole in the inputs, for checking predictive variances.

    ``x`` is uniform on ``[-1, 1]`` minus ``gap``, ``y = sin(3 x) + noise * N(0, 1)``. A
    backend's variance should be larger in the gap and outside ``[-1, 1]`` than in the data.

    Returns
    -------
    ``x (n, 1)`` and ``y (n,)``.

    Examples
    --------
    >>> x, y = gap_regression(0, 50)
    >>> x.shape, y.shape, bool(((x < -0.35) | (x > 0.35)).all())
    ((50, 1), (50,), True)
    """
    n = positive_int("n", n, minimum=2)
    positive("noise", noise)
    lo, hi = gap
    if not -1.0 < lo < hi < 1.0:
        raise ValueError(f"gap must be an interval inside (-1, 1), got {gap!r}")
    k_x, k_y = jax.random.split(as_key(key))
    u = jax.random.uniform(k_x, (n,), minval=0.0, maxval=(lo + 1.0) + (1.0 - hi))
    x = jnp.where(u < lo + 1.0, u - 1.0, u - (lo + 1.0) + hi)
    y = jnp.sin(3.0 * x) + noise * jax.random.normal(k_y, (n,))
    return x[:, None], y
