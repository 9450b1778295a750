"""Input checks shared by the UQ backends (one clear ``ValueError`` naming the argument)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def check_xy(x, y, n_name: str = "x") -> tuple[Array, Array]:
    """``x``, ``y`` as finite float arrays with one leading data axis of equal length.

    Examples
    --------
    >>> x, y = check_xy([[0], [1], [2]], [0, 1, 4])
    >>> x.shape, y.dtype
    ((3, 1), dtype('float32'))
    >>> check_xy([[0], [1]], [0, 1, 4])
    Traceback (most recent call last):
    ...
    ValueError: x and y need one leading data axis of equal length >= 2, got shapes (2, 1) and (3,)
    """
    x, y = jnp.asarray(x, dtype=float), jnp.asarray(y, dtype=float)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(
            f"{n_name} and y need one leading data axis of equal length >= 2, got shapes "
            f"{x.shape} and {y.shape}"
        )
    for name, a in ((n_name, x), ("y", y)):
        if not bool(jnp.all(jnp.isfinite(a))):
            raise ValueError(f"{name} must be finite")
    return x, y


def check_inputs(x, in_ndim: int) -> Array:
    """``x`` as a float array of at least ``in_ndim`` axes (the input's own axes; any leading
    ones are batch axes).

    Examples
    --------
    >>> check_inputs([[0.0, 1.0]], 1).shape
    (1, 2)
    >>> check_inputs(0.5, 1)
    Traceback (most recent call last):
    ...
    ValueError: x must have at least 1 axes, got shape ()
    """
    x = jnp.asarray(x, dtype=float)
    if x.ndim < in_ndim:
        raise ValueError(f"x must have at least {in_ndim} axes, got shape {x.shape}")
    return x
