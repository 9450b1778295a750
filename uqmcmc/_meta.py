"""Package metadata recorded with every run."""

from __future__ import annotations

from importlib import metadata


def versions() -> dict[str, str]:
    """Versions of uqmcmc and the libraries that shape its numbers.

    Examples
    --------
    >>> "jax" in versions()
    True
    """
    out = {}
    for name in (
        "uqmcmc",
        "jax",
        "jaxlib",
        "blackjax",
        "numpyro",
        "flax",
        "optax",
        "arviz",
        "numpy",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
