"""Training sets from exact chains: decorrelated configurations labelled with grad S and S."""

from __future__ import annotations

import warnings
from typing import Any

import blackjax.base
import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc import _arviz
from uqmcmc._validation import positive, positive_int
from uqmcmc.mcmc.checkerboard import as_top_level_api as checkerboard
from uqmcmc.mcmc.driver import run_chains
from uqmcmc.targets.base import check_target
from uqmcmc.uq.data import Dataset, Split
from uqmcmc.uq.rng import as_key

Array = jax.Array

__all__ = ["make_dataset"]


def make_dataset(
    target: Any,
    key: Array | int,
    n: int = 200,
    *,
    n_test: int = 20,
    n_val: int = 0,
    n_chains: int = 20,
    warmup: int = 500,
    thin: int = 50,
    step_size: float = 1.0,
    algorithm: blackjax.base.SamplingAlgorithm | Any | None = None,
    target_acceptance: float | None = None,
    labels: Any | None = None,
    progress: bool = False,
) -> Dataset:
    """Draw ``n`` decorrelated configurations from the exact chain and label them.

    ``n_chains`` independent chains (checkerboard Metropolis by default) start from the target's
    ``initial_positions`` (standard-normal configurations by default), discard ``warmup`` sweeps
    and keep every ``thin``-th sweep until ``n`` fields are collected; the fields are shuffled
    and split into test (``n_test``), validation (``n_val``) and train (the rest). Labels are
    the exact ``grad`` and ``action`` of ``labels`` (default: ``target`` itself). Defaults
    follow Tzivrailis et al.: 200 configurations, 180 train / 20 test.

    Parameters
    ----------
    target
        A target with ``action``, ``grad`` and a ``shape``; for the default sampler a lattice
        target with ``local_delta`` (e.g. :class:`uqmcmc.targets.Phi4`).
    key
        PRNG key or integer seed.
    n, n_test, n_val
        Total number of configurations and the sizes of the test and validation splits.
    n_chains, warmup, thin, step_size
        The exact chains: number, discarded sweeps, sweeps between kept fields, proposal
        half-width of the checkerboard sampler.
    algorithm
        Another BlackJAX ``SamplingAlgorithm`` for the target, replacing the checkerboard; or,
        with ``target_acceptance``, a function ``step_size -> algorithm`` whose step is tuned
        in warm-up towards that acceptance, starting from ``step_size``.
    target_acceptance
        See ``algorithm``.
    labels
        The target whose exact ``action`` and ``grad`` label the configurations, when it is
        not the one they are drawn from (a training set for a domain shift: drawn at one
        temperature, labelled with the action at another).
    progress
        Show the chains' progress bar.

    Returns
    -------
    :class:`Dataset` with ``info`` holding the target's parameters, the sampling settings,
    the mean acceptance and the bulk ESS of ``|M|`` (or of the action) per kept field.

    Examples
    --------
    >>> from uqmcmc.targets import Phi4
    >>> data = make_dataset(Phi4(4, 0.5, 1.0), 0, 16, n_test=4, n_val=2, n_chains=4)
    >>> len(data.train), len(data.val), len(data.test)
    (10, 2, 4)
    >>> data.train.x.shape, data.train.grad.shape, data.train.action.shape
    ((10, 4, 4), (10, 4, 4), (10,))
    >>> data.info["beta"], data.info["thin"], 0 < data.info["acceptance"] < 1
    (0.5, 50, True)

    Drawn at ``beta = 0.3``, labelled with the action at ``beta = 0.5``:

    >>> shifted = make_dataset(Phi4(4, 0.3, 1.0), 0, 8, n_test=2, n_chains=4,
    ...                        labels=Phi4(4, 0.5, 1.0))
    >>> x = shifted.train.x[0]
    >>> bool(jnp.allclose(shifted.train.action[0], Phi4(4, 0.5, 1.0).action(x)))
    True
    """
    check_target(target)
    n = positive_int("n", n, minimum=2)
    n_test = positive_int("n_test", n_test, minimum=0)
    n_val = positive_int("n_val", n_val, minimum=0)
    if n - n_test - n_val < 1:
        raise ValueError(f"n ({n}) must exceed n_test + n_val ({n_test} + {n_val})")
    n_chains = positive_int("n_chains", n_chains)
    warmup = positive_int("warmup", warmup, minimum=0)
    thin = positive_int("thin", thin)
    positive("step_size", step_size)
    shape = getattr(target, "shape", None)
    if shape is None:
        raise ValueError("target must have a `shape` (the shape of one configuration)")
    k_init, k_chain, k_shuffle = jax.random.split(as_key(key), 3)

    if algorithm is None:
        algorithm = checkerboard(target, step_size)
    tune = (
        {}
        if target_acceptance is None
        else {"step_size": step_size, "target_acceptance": target_acceptance}
    )
    labels = target if labels is None else labels
    draws = -(-n // n_chains)
    from uqmcmc.workflows.system import System

    start = System.of(target).initial_positions(k_init, n_chains)
    with warnings.catch_warnings():  # ArviZ warns when chains outnumber draws: intended here
        warnings.filterwarnings("ignore", "More chains", UserWarning)
        idata = run_chains(
            algorithm,
            k_chain,
            start,
            draws * thin,
            warmup=warmup,
            thin=thin,
            target=target,
            observables=lambda x: {"action": target.action(x)},
            record_positions=True,
            **tune,
            num_chunks=20 if progress else 1,  # one compiled chunk when nobody watches
            progress=progress,
        )
    post = _arviz.group(idata, "posterior")
    fields = jnp.asarray(np.asarray(post["position"]).reshape(-1, *shape))
    fields = fields[jax.random.permutation(k_shuffle, fields.shape[0])[:n]]
    m = np.asarray(post["position"]).reshape(n_chains, draws, -1).mean(-1)
    info = {
        **dict(getattr(target, "params", {}) or {}),
        "n": n,
        "n_test": n_test,
        "n_val": n_val,
        "n_chains": n_chains,
        "warmup": warmup,
        "thin": thin,
        "step_size": step_size,
        "acceptance": float(np.mean(_arviz.group(idata, "sample_stats")["is_accepted"])),
        "ess_per_field": _ess_fraction(np.abs(m), np.asarray(post["action"])),
    }

    def split(a, b):  # the target's methods take one configuration
        x = fields[a:b]
        return Split(x, jax.vmap(labels.grad)(x), jax.vmap(labels.action)(x))

    return Dataset(
        train=split(n_test + n_val, n),
        val=split(n_test, n_test + n_val) if n_val else None,
        test=split(0, n_test),
        info=info,
    )


def _ess_fraction(*series: np.ndarray) -> float | None:
    """Smallest bulk ESS per draw among ``(chain, draw)`` series (1 = independent draws)."""
    if series[0].shape[1] < 4:
        return None
    return min(_arviz.ess(s) / s.size for s in series)
