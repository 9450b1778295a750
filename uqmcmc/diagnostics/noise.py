"""After a run: is the noise of ``Delta S-hat`` small enough for the penalised acceptance?

The kernels cannot warn from inside compiled code, so the check reads the recorded
``delta_var`` of a finished run (ArviZ data, a ``sample_stats`` dataset or dict, a stacked
:class:`~uqmcmc.mcmc.NoisyInfo`, or the array itself).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from uqmcmc import _arviz

__all__ = ["check_noise"]


def _delta_var(run: Any) -> np.ndarray:
    if hasattr(run, "children") or callable(getattr(run, "groups", None)):
        run = _arviz.group(run, "sample_stats")  # InferenceData / DataTree
    if isinstance(run, Mapping) or hasattr(run, "data_vars"):
        run = run["delta_var"]  # sample_stats Dataset, a dict, an Info's _asdict()
    elif hasattr(run, "delta_var"):
        run = run.delta_var  # a (stacked) NoisyInfo
    return np.asarray(run, dtype=float)


def check_noise(run: Any, threshold: float = 2.0) -> float:
    """Typical standard deviation of ``Delta S-hat`` in a run; warn if it exceeds ``threshold``.

    Call it outside ``jit`` after a run (the kernels cannot warn from inside compiled code).
    The typical sigma is the square root of the median of ``delta_var``. Above ~2 acceptance
    collapses: at ``Delta S = 0`` the mean Ceperley-Dewing acceptance is ``2 Phi(-sigma / 2)``
    (0.62 at sigma = 1, 0.32 at 2, 0.13 at 3).

    Parameters
    ----------
    run
        InferenceData/DataTree with ``sample_stats.delta_var``, a ``sample_stats`` dataset or
        dict, a stacked :class:`~uqmcmc.mcmc.NoisyInfo`, or the ``delta_var`` array itself.
    threshold
        Warn (one ``UserWarning``) when the typical sigma exceeds this.

    Returns
    -------
    float
        The typical sigma (``nan`` if no finite variance was recorded).

    Examples
    --------
    >>> import numpy as np
    >>> check_noise(np.full((4, 100), 0.25))
    0.5
    """
    values = _delta_var(run)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    sigma = float(np.sqrt(max(float(np.median(values)), 0.0)))
    if sigma > threshold:
        accept = math.erfc(sigma / (2 * math.sqrt(2)))  # 2 Phi(-sigma/2)
        warnings.warn(
            f"the typical standard deviation of the Delta S estimate is {sigma:.3g} > "
            f"{threshold:g}: the penalised acceptance collapses (mean acceptance at Delta S = 0 "
            f"is 2 Phi(-sigma/2) = {accept:.2g}). Shrink the step size or use a better model.",
            UserWarning,
            stacklevel=2,
        )
    return sigma
