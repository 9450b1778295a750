"""The backend contract (uqmcmc.uq.base.UQBackend), checked on every registered backend and on
a user's backend defined here, outside the package; the registry (uqmcmc.uq.registry).

Each backend is fitted once on phi^4 L=4 (16 training fields) with tiny settings: the checks
are about the contract (shapes, joint draws, fixed draws, moments, persistence), not about the
quality of the fit.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from uqmcmc.targets import Phi4
from uqmcmc.uq import io, registry
from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.calibration import Recalibrated
from uqmcmc.uq.fixed import FixedDraw, draw_ids
from uqmcmc.uq.registry import BackendSettings, BackendSpec
from uqmcmc.workflows.training_data import make_dataset

BUILTINS = ("ensemble", "dropout", "last_layer", "bnn", "deep_kernel")
SETTINGS = BackendSettings(n_members=3, epochs=3, svi_steps=200, gp_steps=30)

#: Joint draws behind the moment checks, and the largest |z| accepted there: 128 output
#: elements per check, so |z| > 5 by chance has probability ~1e-4 per check for Gaussian
#: z-scores. MC dropout's reference is itself an average over 20 fixed masks whose outputs are
#: heavy-tailed (kurtosis up to 18 measured here), so its mean is far from Gaussian: measured
#: max |z| 2.9 to 4.3 over 12 fits and draw keys, hence 6 for such a reference.
N_DRAWS = 400
Z_MAX = 5.0
Z_MAX_MASKS = 6.0


# -- a user's backend, defined outside the package ----------------------------------------
class SiteLinear(UQBackend):
    """Bayesian linear regression of every site's label on the site's value,
    ``f(x) = a x + b`` with ``(a, b) ~ N(m, C)``: one ``(a, b)`` per joint draw. ``var`` is
    epistemic (``[x, 1] C [x, 1]^T``) plus the fitted noise variance."""

    name = "site_linear"
    kind = "SiteLinear"

    def __init__(self, prior_precision: float = 1e-2):
        self.prior_precision = float(prior_precision)
        self.post: dict[str, jax.Array] | None = None

    def fit(self, x, y, *, key, prior_precision: float | None = None):
        if prior_precision is not None:
            self.prior_precision = float(prior_precision)
        phi = np.c_[np.asarray(x, np.float64).ravel(), np.ones(np.size(x))]
        t = np.asarray(y, np.float64).ravel()
        w, *_ = np.linalg.lstsq(phi, t, rcond=None)
        noise = float(np.mean((t - phi @ w) ** 2))
        cov = np.linalg.inv(phi.T @ phi / noise + self.prior_precision * np.eye(2))
        mean = cov @ phi.T @ t / noise
        self._set(mean, cov, noise)
        return self

    def _set(self, mean, cov, noise):
        self.post = {
            "mean": jnp.asarray(mean, jnp.float32),
            "cov": jnp.asarray(cov, jnp.float32),
            "factor": jnp.asarray(np.linalg.cholesky(np.asarray(cov, np.float64)), jnp.float32),
            "noise": jnp.asarray(noise, jnp.float32),
        }

    @staticmethod
    def _rows(x):
        x = jnp.asarray(x, jnp.float32)
        return jnp.stack([x, jnp.ones_like(x)], axis=-1)

    def predict_mean_var(self, x, *, epistemic_only=False):
        rows, p = self._rows(x), self.post
        var = jnp.einsum("...p,pq,...q->...", rows, p["cov"], rows)
        return rows @ p["mean"], var if epistemic_only else var + p["noise"]

    def predict_draws(self, key, x, n):
        p = self.post
        w = p["mean"] + jax.random.normal(key, (n, 2)) @ p["factor"].T
        return jnp.einsum("...p,np->n...", self._rows(x), w)

    def save(self, path):
        arrays = {k: self.post[k] for k in ("mean", "cov", "noise")}
        return io.save_state(path, arrays, {"kind": self.kind, "prior": self.prior_precision})

    @classmethod
    def load(cls, path, *, model_cls=None):
        arrays, meta = io.load_state(path, cls.kind)
        self = cls(meta["prior"])
        self._set(arrays["mean"], arrays["cov"], float(arrays["noise"]))
        return self


USER = BackendSpec(
    "site_linear",
    build=lambda s: SiteLinear(),
    fit_settings=lambda s: {"prior_precision": 1e-2},
    description="per-site Bayesian linear regression (a test's own backend)",
    backend_cls=SiteLinear,
)

FAST = {"last_layer", USER.name}
CONTRACT = [
    name if name in FAST else pytest.param(name, marks=pytest.mark.slow)
    for name in (*registry.names(), USER.name)
]


@pytest.fixture(scope="module")
def user_backend():
    registry.register(USER)
    yield USER
    registry.unregister(USER.name)


@pytest.fixture(scope="module")
def data():
    return make_dataset(Phi4(4, 0.5, 1.0), jax.random.key(0), 24, n_test=8)


@pytest.fixture(scope="module")
def fitted(data, user_backend):
    cache: dict[str, UQBackend] = {}

    def get(name: str) -> UQBackend:
        if name not in cache:
            cache[name] = registry.fit(
                name, SETTINGS, data.train.x, data.train.grad, jax.random.key(1)
            )
        return cache[name]

    return get


# -- the checks, for any backend ----------------------------------------------------------
def _key_data(ids):
    ids = jnp.asarray(ids) if not isinstance(ids, jax.Array) else ids
    if jnp.issubdtype(ids.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(ids))
    return np.asarray(ids)


def check_shapes(b, x, out_shape):
    mean, var = b.predict_mean_var(x)
    mean_e, var_e = b.predict_mean_var(x, epistemic_only=True)
    assert mean.shape == var.shape == mean_e.shape == var_e.shape == out_shape
    np.testing.assert_allclose(mean_e, mean, rtol=1e-6, atol=1e-6)
    for v in (var, var_e):
        assert bool(jnp.all(jnp.isfinite(v))) and bool(jnp.all(v >= 0))
    # epistemic_only drops the noise floor, never adds to the variance
    assert bool(jnp.all(var_e <= var * (1 + 1e-5) + 1e-7))
    draws = b.predict_draws(jax.random.key(2), x, 4)
    assert draws.shape == (4, *out_shape) and bool(jnp.all(jnp.isfinite(draws)))
    assert b.predict_draws(jax.random.key(2), x[0], 4).shape == (4, *out_shape[1:])


def check_moments(b, x):
    """Mean and variance of ``N_DRAWS`` joint draws against ``predict_mean_var(x,
    epistemic_only=True)``, per output element, as z-scores with the standard errors of the
    sample mean (``sqrt(var / N)``) and of the sample variance (``sqrt((m4 - var^2) / N)``,
    ``m4`` the draws' fourth central moment). A backend whose ``predict_mean_var`` is itself
    an average over ``n_masks`` fixed dropout masks adds the same errors for ``n_masks``
    samples (with the draws' moments) and is allowed ``Z_MAX_MASKS``. The draws of an
    ensemble are members (with replacement), so the reference is the member mixture, which is
    what ``predict_mean_var`` returns."""
    mean, var = (np.asarray(a, np.float64) for a in b.predict_mean_var(x, epistemic_only=True))
    draws = np.asarray(b.predict_draws(jax.random.key(7), x, N_DRAWS), np.float64)
    d_mean = draws.mean(0)
    dev = draws - d_mean
    d_var = (dev**2).mean(0)
    excess = np.maximum((dev**4).mean(0) - d_var**2, 0.0)
    n_ref = getattr(b, "n_masks", math.inf)
    z_max = Z_MAX if math.isinf(n_ref) else Z_MAX_MASKS
    # float32 round-off of the predictions: a floor on both standard errors
    floor_mean = 1e-5 * np.max(np.abs(mean)) + 1e-7
    floor_var = 1e-5 * np.max(var) + 1e-5 * floor_mean**2
    se_mean = np.sqrt(d_var / N_DRAWS + d_var / n_ref) + floor_mean
    se_var = np.sqrt(excess / N_DRAWS + excess / n_ref) + floor_var
    z_mean = np.abs(d_mean - mean) / se_mean
    z_var = np.abs(d_var - var) / se_var
    assert z_mean.max() < z_max, (z_mean.max(), np.unravel_index(z_mean.argmax(), z_mean.shape))
    assert z_var.max() < z_max, (z_var.max(), np.unravel_index(z_var.argmax(), z_var.shape))
    assert np.mean(var) > 0  # the draws do differ


def moves(x, scale=0.1):
    """Real moves: each test field and a small Gaussian step from it (a MALA-sized move)."""
    return x, x + scale * jax.random.normal(jax.random.key(11), x.shape)


class Summed:
    """A field backend's outputs summed per configuration: an energy-type scalar surrogate."""

    def __init__(self, b):
        self.b = b

    def predict_mean_var(self, y, *, epistemic_only=False):
        mean, var = self.b.predict_mean_var(y, epistemic_only=epistemic_only)
        return jnp.sum(mean, axis=(-2, -1)), jnp.sum(var, axis=(-2, -1))

    def predict_draws(self, key, y, n):
        return jnp.sum(self.b.predict_draws(key, y, n), axis=(-2, -1))

    def predict_linear(self, y, weights):
        mean, var = self.b.predict_linear(y, jnp.broadcast_to(weights[:, None, None], y.shape))
        return jnp.sum(mean, axis=(-2, -1)), var


def _variance_z(values, reference, n_ref):
    """|sample variance of ``values`` - ``reference``| in standard errors of that variance
    (plus those of a reference that is itself a ``n_ref``-sample variance)."""
    emp = values.var()
    excess = max(np.mean((values - values.mean()) ** 4) - emp**2, 0.0)
    se = np.sqrt(excess / values.size + excess / n_ref) + 1e-5 * emp + 1e-9
    return abs(emp - reference) / se


def check_delta_variance(b, x):
    """The variance a penalty gets in ``mean`` mode, for both estimators, on real moves,
    against the empirical variance of the per-draw ``Delta S`` over ``N_DRAWS`` joint draws
    (z-scores with the standard error of a sample variance, as in :func:`check_moments`); and
    ``draws`` mode's reported variance times ``n_draws`` (averaged over 200 steps) against the
    same empirical variance. The per-draw ``Delta S`` is what each estimator computes from one
    joint draw: ``sum_j w_j f_k(x + t_j delta) . delta`` (Simpson) and ``E_k(x') - E_k(x)``,
    with the sum of a field's outputs as the "energy"."""
    from uqmcmc.mcmc import QUADRATURE, EnergyDelta, GradientDelta

    n_ref = getattr(b, "n_masks", math.inf)
    z_max = Z_MAX if math.isinf(n_ref) else Z_MAX_MASKS
    ts, ws = QUADRATURE["simpson"]
    before, after = moves(x[:4])
    w = jnp.asarray(ws).reshape(-1, 1, 1, 1) * (after - before)  # (node, move, L, L)
    nodes = jnp.stack([before + t * (after - before) for t in ts])
    f = b.predict_draws(jax.random.key(8), nodes, N_DRAWS)  # (draw, node, move, L, L)
    energies = Summed(b).predict_draws(jax.random.key(8), jnp.stack([before, after]), N_DRAWS)
    per_draw = {
        GradientDelta: np.asarray(jnp.sum(f * w, axis=(1, 3, 4)), np.float64),
        EnergyDelta: np.asarray(energies[:, 1] - energies[:, 0], np.float64),
    }
    keys = jax.random.split(jax.random.key(9), 200)
    for est_cls, backend in ((GradientDelta, b), (EnergyDelta, Summed(b))):
        mean_est, draws_est = est_cls(backend), est_cls(backend, mode="draws", n_draws=8)

        def mean_var(x0, x1, est=mean_est):
            return est.estimate(None, x0, x1, est.init(x0))[0].var

        def draws_var(k, est=draws_est):
            return est.estimate(k, before[0], after[0], est.init(before[0]))[0].var

        reported = np.asarray(jax.vmap(mean_var)(before, after), np.float64)
        for m in range(before.shape[0]):
            z = _variance_z(per_draw[est_cls][:, m], reported[m], n_ref)
            assert z < z_max, (est_cls.__name__, m, reported[m], per_draw[est_cls][:, m].var())
        times_n = 8 * np.asarray(jax.vmap(draws_var)(keys), np.float64)
        emp = per_draw[est_cls][:, 0]
        se = np.hypot(times_n.std() / np.sqrt(times_n.size), emp.var() * np.sqrt(2 / emp.size))
        assert abs(times_n.mean() - emp.var()) / (se + 1e-9) < z_max, (times_n.mean(), emp.var())


def check_joint(b, x):
    """One draw (the same key, or the same draw id) gives a point the same prediction whether
    the point is evaluated alone or in a batch, and the same twice."""
    key = jax.random.key(3)
    full = np.asarray(b.predict_draws(key, x, 4))
    scale = float(np.max(np.abs(full)))
    np.testing.assert_array_equal(full, np.asarray(b.predict_draws(key, x, 4)))
    for rows in (slice(0, 1), slice(5, 6)):
        part = np.asarray(b.predict_draws(key, x[rows], 4))
        np.testing.assert_allclose(part, full[:, rows], rtol=1e-5, atol=1e-5 * scale)
    for draw in b.draw_ids(jax.random.key(4), 2):
        whole = np.asarray(b.predict_draw(draw, x))
        np.testing.assert_allclose(
            np.asarray(b.predict_draw(draw, x[2:3])), whole[2:3], rtol=1e-5, atol=1e-5 * scale
        )


def check_fixed_draws(b, x):
    """``draw_ids`` + ``predict_draw`` are what :class:`FixedDraw` (vmapped over the ids, as
    the per-draw chains run it) and :func:`uqmcmc.uq.fixed.draw_ids` use."""
    key = jax.random.key(5)
    ids = b.draw_ids(key, 4)
    np.testing.assert_array_equal(_key_data(draw_ids(b, key, 4)), _key_data(ids))
    k = int(jax.tree.leaves(ids)[0].shape[0])
    assert k == min(4, getattr(b, "n_members", 4))
    stacked = jax.vmap(lambda d: FixedDraw(b, d).predict_mean_var(x))(ids)
    assert stacked[0].shape == (k, *x.shape) and float(jnp.max(jnp.abs(stacked[1]))) == 0.0
    scale = float(jnp.max(jnp.abs(stacked[0])))
    for j in range(k):
        one = np.asarray(b.predict_draw(ids[j], x))
        np.testing.assert_allclose(stacked[0][j], one, rtol=1e-5, atol=1e-5 * scale)
    assert not np.allclose(stacked[0][0], stacked[0][1])  # different draws
    if type(b).predict_draw is UQBackend.predict_draw:  # the default: a one-draw predict_draws
        np.testing.assert_array_equal(one, np.asarray(b.predict_draws(ids[k - 1], x, 1)[0]))


def check_save_load(b, x, path, load):
    back = load(b.save(path))
    assert type(back) is type(b)
    for epistemic_only in (False, True):
        got = back.predict_mean_var(x, epistemic_only=epistemic_only)
        want = b.predict_mean_var(x, epistemic_only=epistemic_only)
        for a, w in zip(got, want, strict=True):
            np.testing.assert_allclose(a, w, rtol=1e-6, atol=1e-6)
    key = jax.random.key(6)
    np.testing.assert_allclose(
        back.predict_draws(key, x, 4), b.predict_draws(key, x, 4), rtol=1e-6, atol=1e-6
    )
    ids = b.draw_ids(key, 2)
    np.testing.assert_array_equal(_key_data(back.draw_ids(key, 2)), _key_data(ids))
    np.testing.assert_allclose(
        back.predict_draw(ids[1], x), b.predict_draw(ids[1], x), rtol=1e-6, atol=1e-6
    )


# -- the contract, per registered backend and the user's -----------------------------------
@pytest.mark.parametrize("name", CONTRACT)
def test_name_and_class(name, fitted):
    b = fitted(name)
    assert isinstance(b, UQBackend)
    assert b.name == type(b).name == name
    assert registry.backend_class(name) is type(b)
    assert registry.get(name).name == name


@pytest.mark.parametrize("name", CONTRACT)
def test_shapes_and_variances(name, fitted, data):
    check_shapes(fitted(name), data.test.x, data.test.grad.shape)


@pytest.mark.parametrize("name", CONTRACT)
def test_draw_moments_match_the_epistemic_mean_var(name, fitted, data):
    check_moments(fitted(name), data.test.x)


@pytest.mark.parametrize(
    "name",
    [
        n if n == USER.name else pytest.param(n, marks=pytest.mark.slow)
        for n in (*registry.names(), USER.name)
    ],
)
def test_delta_variance_is_that_of_the_estimate(name, fitted, data):
    check_delta_variance(fitted(name), data.test.x)


@pytest.mark.parametrize("name", CONTRACT)
def test_draws_are_joint(name, fitted, data):
    check_joint(fitted(name), data.test.x)


@pytest.mark.parametrize("name", CONTRACT)
def test_fixed_draws(name, fitted, data):
    check_fixed_draws(fitted(name), data.test.x)


@pytest.mark.parametrize("name", CONTRACT)
def test_save_load_predicts_identically(name, fitted, data, tmp_path):
    check_save_load(
        fitted(name), data.test.x, tmp_path / name, lambda path: registry.load(name, path)
    )


@pytest.mark.parametrize("inner", [pytest.param("last_layer", marks=pytest.mark.slow), USER.name])
def test_recalibrated_backend_meets_the_contract(inner, fitted, data, tmp_path):
    b = Recalibrated(fitted(inner), 2.5)
    assert isinstance(b, UQBackend) and b.name == "recalibrated"
    check_shapes(b, data.test.x, data.test.grad.shape)
    check_moments(b, data.test.x)
    check_delta_variance(b, data.test.x)
    check_joint(b, data.test.x)
    check_fixed_draws(b, data.test.x)
    check_save_load(b, data.test.x, tmp_path / "rc", Recalibrated.load)
    meta = json.loads((tmp_path / "rc" / "meta.json").read_text())
    assert meta["inner_backend"] == inner
    twice = Recalibrated(b, 2.0)  # a wrapped Recalibrated saves and loads too
    back = Recalibrated.load(twice.save(tmp_path / "rc2"))
    assert type(back.backend) is Recalibrated and type(back.backend.backend) is type(b.backend)
    want = 5.0 * fitted(inner).predict_mean_var(data.test.x)[1]
    for wrapped in (twice, back):
        np.testing.assert_allclose(wrapped.predict_mean_var(data.test.x)[1], want, rtol=1e-5)


def test_recalibrated_reads_files_saved_before_the_registry(fitted, data, tmp_path):
    """The old layout recorded only the wrapped backend's class name as ``inner``."""
    b = Recalibrated(fitted("last_layer"), 2.5)
    path = b.save(tmp_path / "rc")
    meta = json.loads((path / "meta.json").read_text())
    del meta["inner_backend"]
    assert meta["inner"] == "BayesianLastLayer"
    (path / "meta.json").write_text(json.dumps(meta))
    back = Recalibrated.load(path)
    pairs = zip(back.predict_mean_var(data.test.x), b.predict_mean_var(data.test.x), strict=True)
    for got, want in pairs:
        np.testing.assert_array_equal(got, want)
    meta["inner"] = "os.system"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="'os.system' is not a uqmcmc backend"):
        Recalibrated.load(path)


# -- the registry ---------------------------------------------------------------------------
def test_builtin_names_come_first_in_order():
    assert registry.names()[:5] == BUILTINS
    for name in BUILTINS:
        assert registry.get(name).description


def test_builtins_are_the_workflow_backends():
    """The networks and settings of the compare workflow (its former make_backend and
    fit settings): same classes, constructor arguments and fit keyword arguments."""
    from uqmcmc.nets import RCNN

    built = {name: registry.build(name, SETTINGS) for name in BUILTINS}
    assert {n: type(b).__name__ for n, b in built.items()} == {
        "ensemble": "DeepEnsemble", "dropout": "MCDropout", "last_layer": "BayesianLastLayer",
        "bnn": "NumPyroBNN", "deep_kernel": "DeepKernelRegression",
    }  # fmt: skip
    for b in built.values():
        assert b.spec.cls is RCNN
    assert {n: b.spec.kwargs for n, b in built.items()} == {
        "ensemble": {}, "dropout": {"dropout": 0.05}, "last_layer": {},
        "bnn": {"channels": 8, "depth": 1}, "deep_kernel": {},
    }  # fmt: skip
    assert built["ensemble"].n_members == 3 and built["ensemble"].loss == "mse"
    assert built["dropout"].n_masks == 20 and built["dropout"].mask_seed == 0
    assert built["last_layer"].alpha is None and built["last_layer"].beta is None
    assert built["bnn"].prior_scale == 1.0 and built["bnn"].noise is None
    assert built["deep_kernel"].rff_features == 256 and built["deep_kernel"].num_inducing == 64
    fits = {n: registry.get(n).fit_settings(SETTINGS) for n in BUILTINS}
    assert fits["bnn"] == {"method": "svi", "num_samples": 50, "svi_steps": 200}
    for name in ("ensemble", "dropout", "last_layer", "deep_kernel"):
        kw = fits[name]
        assert kw.pop("epochs") == 3 and kw.pop("progress") is False
        assert callable(kw.pop("optimizer"))  # cosine_adam(3e-2)
        assert kw == ({"gp_steps": 30} if name == "deep_kernel" else {})


def test_unknown_names_list_the_registered_ones():
    listed = "unknown backend 'gp'; registered: " + ", ".join(BUILTINS)
    with pytest.raises(ValueError, match=listed):
        registry.get("gp")
    with pytest.raises(ValueError, match="unknown backend"):
        registry.build("gp", SETTINGS)
    with pytest.raises(ValueError, match="unknown backend"):
        registry.unregister("gp")


def test_duplicates_are_refused_unless_replaced():
    spec = registry.get("dropout")
    with pytest.raises(ValueError, match="'dropout' is already registered"):
        registry.register(spec)
    with pytest.raises(ValueError, match="'dropout' is already registered"):
        registry.register(BackendSpec("dropout", build=lambda s: SiteLinear()))
    other = BackendSpec("dropout", build=spec.build, description="replaced")
    try:
        assert registry.register(other, replace=True) is other
        assert registry.get("dropout").description == "replaced"
        assert registry.names()[:5] == BUILTINS  # in its old place
    finally:
        registry.register(spec, replace=True)
    assert registry.get("dropout") is spec


def test_specs_and_settings_are_checked():
    with pytest.raises(ValueError, match="backend name"):
        BackendSpec("a/b", build=lambda s: SiteLinear())
    with pytest.raises(ValueError, match="build must be callable"):
        BackendSpec("ok", build=None)
    with pytest.raises(TypeError, match="BackendSpec"):
        registry.register("ensemble")
    with pytest.raises(ValueError, match="epochs"):
        BackendSettings(epochs=0)
    with pytest.raises(ValueError, match="n_members"):
        BackendSettings(n_members=1)
    registry.register(BackendSpec("not_a_backend", build=lambda s: object()))
    try:
        with pytest.raises(TypeError, match="not a uqmcmc.uq.base.UQBackend"):
            registry.build("not_a_backend")
    finally:
        registry.unregister("not_a_backend")


class _EntryPoint:
    def __init__(self, name, obj):
        self.name, self.value, self._obj = name, f"plugin:{name}", obj

    def load(self):
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_entry_points_are_loaded_lazily_once(monkeypatch):
    import importlib.metadata

    from_spec = BackendSpec("plugin_a", build=lambda s: SiteLinear())
    from_factory = BackendSpec("plugin_b", build=lambda s: SiteLinear())
    calls = []

    def entry_points(*, group):
        calls.append(group)
        return [
            _EntryPoint("plugin_a", from_spec),
            _EntryPoint("plugin_b", lambda: from_factory),
            _EntryPoint("broken", ImportError("no module named plugin")),
            _EntryPoint("not_a_spec", lambda: 42),
            _EntryPoint("dropout", registry.get("dropout")),  # a name taken by a built-in
        ]

    monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    with pytest.warns(RuntimeWarning) as warned:
        names = registry.names()
    assert calls == ["uqmcmc.backends"]
    assert names[:5] == BUILTINS and names[-2:] == ("plugin_a", "plugin_b")
    assert registry.get("plugin_b") is from_factory
    messages = " ".join(str(w.message) for w in warned)
    for bad in ("broken", "not_a_spec", "dropout"):
        assert f"entry point {bad!r}" in messages
    registry.get("plugin_a")
    assert calls == ["uqmcmc.backends"]  # once


@pytest.mark.slow
def test_importing_the_registry_imports_no_backend():
    # ArviZ 1.x (arviz_base.io_numpyro) imports numpyro itself: only what comes on top of ArviZ
    # counts against the registry.
    code = (
        "import sys, warnings; warnings.simplefilter('ignore'); import arviz\n"
        "before = set(sys.modules)\n"
        "import uqmcmc.uq.registry, uqmcmc.uq.deep_kernel, uqmcmc.uq.calibration\n"
        "print(sorted(m for m in set(sys.modules) - before if m == 'numpyro' or m in ("
        "'uqmcmc.uq.bnn', 'uqmcmc.uq.ensemble', 'uqmcmc.uq.dropout', 'uqmcmc.uq.last_layer')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
