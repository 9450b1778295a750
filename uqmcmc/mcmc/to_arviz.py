"""The records of a run as ArviZ data (through :func:`uqmcmc._arviz.make_idata`).

:func:`~uqmcmc.mcmc.sampling_loop.sample_chains` returns one record per sampling chunk, each
``{"obs": {name: (draws, chains, ...)}, "stats": {name: (draws, chains, ...)}}``;
:func:`to_arviz` concatenates them into ``posterior`` and ``sample_stats`` with ArviZ's
``(chain, draw, ...)`` layout (or takes them so laid out, as a checkpointed run reads them
back), names the dims of whole positions and of the variants of a batched run, and stores the
attrs; :func:`run_attrs` builds those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from uqmcmc import _arviz
from uqmcmc._meta import versions
from uqmcmc.mcmc.batched import BATCH_DIM

__all__ = ["stack_records", "run_attrs", "to_arviz"]


def stack_records(records: Sequence[Mapping[str, Mapping[str, Any]]], part: str) -> dict:
    """The ``part`` (``"obs"`` or ``"stats"``) of all chunks, as ``(chain, draw, ...)`` arrays.

    Examples
    --------
    >>> import numpy as np
    >>> records = [{"obs": {"x": np.zeros((3, 2))}}, {"obs": {"x": np.ones((1, 2))}}]
    >>> stack_records(records, "obs")["x"].shape  # 4 draws of 2 chains
    (2, 4)
    """
    return {
        name: np.swapaxes(np.concatenate([r[part][name] for r in records]), 0, 1)
        for name in records[0][part]
    }


def run_attrs(
    target: Any,
    settings: Mapping[str, Any],
    step_size: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The attrs of a run: the target's ``params``, the run ``settings``, the package
    versions, the ``step_size`` (unless ``None``) and ``extra`` (which wins).

    Examples
    --------
    >>> from uqmcmc.targets import Phi4
    >>> attrs = run_attrs(Phi4(4, 0.5, 1.0), {"num_chains": 2}, 0.5, {"sampler": "checkerboard"})
    >>> attrs["L"], attrs["num_chains"], attrs["step_size"], attrs["sampler"], "versions" in attrs
    (4, 2, 0.5, 'checkerboard', True)
    """
    meta = dict(getattr(target, "params", {}) or {})
    meta.update(settings)
    meta["versions"] = versions()
    if step_size is not None:
        meta["step_size"] = float(step_size)
    meta.update(extra or {})
    return meta


def to_arviz(
    records: Sequence[Mapping[str, Mapping[str, Any]]] | Mapping[str, Mapping[str, Any]],
    dims: Mapping[str, list[str]],
    attrs: Mapping[str, Any],
    *,
    batch_size: int | None = None,
    record_positions: bool = False,
) -> Any:
    """ArviZ data (InferenceData, or DataTree under ArviZ 1.x) of a run's records.

    Parameters
    ----------
    records
        The chunks of :class:`~uqmcmc.mcmc.sampling_loop.LoopResult` ``.records``, each
        ``(draw, chain, ...)``; or ONE dict ``{"obs": ..., "stats": ...}`` of arrays already
        shaped ``(chain, draw, ...)`` (what a checkpointed run reads back from its files),
        used without a copy.
    dims
        ArviZ dims of non-scalar observables, e.g. ``{"G": ["r"]}``.
    attrs
        Attrs of the run (:func:`run_attrs`).
    batch_size
        ``K`` of a batched algorithm: every variable gets a leading ``variant`` dimension.
    record_positions
        The records hold whole positions as ``position`` (dims ``site_0``, ``site_1``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> records = [{"obs": {"x": np.zeros((5, 4, 2))}, "stats": {"lp": np.zeros((5, 4))}}]
    >>> idata = to_arviz(records, {"x": ["coord"]}, {"seed": 0})
    >>> idata.posterior["x"].dims, idata.sample_stats["lp"].shape
    (('chain', 'draw', 'coord'), (4, 5))
    >>> stacked = {"obs": {"x": np.zeros((4, 5, 2))}, "stats": {"lp": np.zeros((4, 5))}}
    >>> to_arviz(stacked, {"x": ["coord"]}, {}).posterior["x"].shape  # already (chain, draw)
    (4, 5, 2)
    """
    if isinstance(records, Mapping):
        posterior, stats = dict(records["obs"]), dict(records["stats"])
    else:
        posterior, stats = stack_records(records, "obs"), stack_records(records, "stats")
    if record_positions:
        n_sites = posterior["position"].ndim - 2 - (batch_size is not None)
        dims = {**dims, "position": [f"site_{i}" for i in range(n_sites)]}
    if batch_size is not None:
        dims = {name: [BATCH_DIM, *dims.get(name, [])] for name in {**posterior, **stats}}
    return _arviz.make_idata(posterior, stats, dims=dims, attrs=attrs)
