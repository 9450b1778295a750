"""The compare workflow's backends: each UQ backend with the RCNN surrogate of ``grad S`` and
the workflow's training settings."""

from __future__ import annotations

from uqmcmc.workflows.compare_config import BACKENDS, CompareConfig


def _rcnn_kwargs(dropout: float = 0.0) -> dict:
    """The RCNN that reaches ~1% relative RMSE on phi^4's grad S (3x3 stem, 1x1 blocks)."""
    return {"dropout": dropout} if dropout else {}


def make_backend(name: str, cfg: CompareConfig):
    """An unfitted backend of the given name with the RCNN surrogate of ``grad S``.

    MC dropout keeps ``n_masks=20`` fixed masks and the BNN 50 posterior draws (see
    :func:`fit_backend`): every mean-mode MALA step evaluates all of them twice, so these set
    the cost of the mean-mode chains. The deep kernel draws with 256 random features (its
    draws-mode step is the workflow's most expensive; the tails of its ``Delta S`` draws are
    Gaussian within +-0.06 excess kurtosis there).

    Examples
    --------
    >>> type(make_backend("last_layer", CompareConfig())).__name__
    'BayesianLastLayer'
    >>> make_backend("ensemble", CompareConfig(n_members=3)).n_members
    3
    """
    from uqmcmc.nets import RCNN
    from uqmcmc.uq.bnn import NumPyroBNN
    from uqmcmc.uq.deep_kernel import DeepKernelRegression
    from uqmcmc.uq.dropout import MCDropout
    from uqmcmc.uq.ensemble import DeepEnsemble
    from uqmcmc.uq.last_layer import BayesianLastLayer

    if name == "ensemble":
        return DeepEnsemble(RCNN, _rcnn_kwargs(), n_members=cfg.n_members)
    if name == "dropout":
        return MCDropout(RCNN, _rcnn_kwargs(dropout=0.05), n_masks=20)
    if name == "last_layer":
        return BayesianLastLayer(RCNN, _rcnn_kwargs())
    if name == "bnn":
        return NumPyroBNN(RCNN, {**_rcnn_kwargs(), "channels": 8, "depth": 1})
    if name == "deep_kernel":
        # 256 random features: the draws' covariance is exact for any count, and the excess
        # kurtosis of a phi^4 MALA step's Delta S draws is within +-0.06 of zero at 256 and
        # 512; the draws-mode step costs 0.4 times that of the library default (768).
        return DeepKernelRegression(RCNN, _rcnn_kwargs(), rff_features=256)
    raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")


def _fit_kwargs(name: str, cfg: CompareConfig) -> dict:
    if name == "bnn":
        return {"method": "svi", "num_samples": 50, "svi_steps": cfg.svi_steps}
    from uqmcmc.uq.training import cosine_adam

    kwargs = {"epochs": cfg.epochs, "optimizer": cosine_adam(3e-2), "progress": False}
    return {**kwargs, "gp_steps": cfg.gp_steps} if name == "deep_kernel" else kwargs


def fit_backend(name: str, cfg: CompareConfig, x, y, key):
    """Build and fit one backend on ``(x, y)`` with the workflow's training settings
    (``cfg.epochs`` of cosine-decayed Adam from 3e-2; SVI for the BNN).

    Examples
    --------
    >>> import jax
    >>> from uqmcmc.targets import Phi4
    >>> from uqmcmc.uq.data import make_dataset
    >>> data = make_dataset(Phi4(4, 0.5, 1.0), jax.random.key(0), 12, n_test=4)
    >>> cfg = CompareConfig(epochs=2)
    >>> b = fit_backend("last_layer", cfg, data.train.x, data.train.grad, jax.random.key(1))
    >>> mean, var = b.predict_mean_var(data.test.x)
    >>> mean.shape, bool((var > 0).all())
    ((4, 4, 4), True)
    """
    return make_backend(name, cfg).fit(x, y, key=key, **_fit_kwargs(name, cfg))
