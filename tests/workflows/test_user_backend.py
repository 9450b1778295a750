"""A backend of the user's own, defined outside uqmcmc and offered through the
``uqmcmc.backends`` entry-point group, runs through ``uqmcmc compare --backends <name>``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

# A per-site Bayesian linear model of grad S on the features (sum of neighbours, phi, phi^3):
# exact for phi^4 in the mean, with a Gaussian posterior over its three weights (one weight
# sample per joint draw). It lives in a module of the user's, not in uqmcmc.
USER_MODULE = """
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from uqmcmc.uq.base import UQBackend
from uqmcmc.uq.registry import BackendSpec


def _features(x):
    nn = sum(jnp.roll(x, s, axis=a) for s in (1, -1) for a in (-1, -2))
    return jnp.stack([nn, x, x**3], axis=-1)


class SiteLinear(UQBackend):
    name = "site_linear"

    def __init__(self, prior=1.0, noise=1e-2):
        self.prior, self.noise = prior, noise

    def fit(self, x, y, *, key, **settings):
        f = np.asarray(_features(x)).reshape(-1, 3)
        t = np.asarray(y).reshape(-1)
        precision = f.T @ f / self.noise + np.eye(3) / self.prior
        self.cov = np.linalg.inv(precision)
        self.mean = self.cov @ f.T @ t / self.noise
        return self

    def predict_mean_var(self, x, *, epistemic_only=False):
        f = _features(x)
        var = jnp.einsum("...i,ij,...j->...", f, self.cov, f)
        return f @ self.mean, var if epistemic_only else var + self.noise

    def predict_draws(self, key, x, n):
        w = jax.random.multivariate_normal(key, self.mean, self.cov, (n,))
        return jnp.einsum("...i,ni->n...", _features(x), w)

    def save(self, path):
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "w.npz", mean=self.mean, cov=self.cov)
        (path / "meta.json").write_text(json.dumps({"prior": self.prior, "noise": self.noise}))
        return path

    @classmethod
    def load(cls, path, *, model_cls=None):
        out = cls(**json.loads((Path(path) / "meta.json").read_text()))
        arrays = np.load(Path(path) / "w.npz")
        out.mean, out.cov = arrays["mean"], arrays["cov"]
        return out


SPEC = BackendSpec("site_linear", build=lambda settings: SiteLinear(), backend_cls=SiteLinear)
"""

#: The tiny run of the resume tests and the compare doctests: the programs that do not depend on
#: the backend (exact chain, control, training set, positive control) load from the compile
#: cache when one of those ran first.
SETTINGS = """
quick = true
steps = 40
warmup = 20
exact_steps = 200
member_steps = 40
n_train = 16
n_test = 4
epochs = 2
identity_positions = 8
"""


@pytest.fixture(scope="module")
def user_site(tmp_path_factory):
    """A folder on PYTHONPATH with the user's module and an installed-package record (a
    dist-info folder) whose entry point names its BackendSpec."""
    site = tmp_path_factory.mktemp("site")
    (site / "my_backends.py").write_text(USER_MODULE)
    info = site / "my_backends-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-backends\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[uqmcmc.backends]\nsite_linear = my_backends:SPEC\n")
    return site


def _uqmcmc(site, *args, cwd):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "uqmcmc.cli", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_unknown_backend_lists_the_registered_ones(user_site, tmp_path):
    proc = _uqmcmc(user_site, "compare", "--backends", "nope", "--out", "x", cwd=tmp_path)
    assert proc.returncode == 2
    assert "site_linear" in proc.stderr and "ensemble" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_user_backend_runs_through_compare(user_site, tmp_path):
    (tmp_path / "tiny.toml").write_text(textwrap.dedent(SETTINGS))
    proc = _uqmcmc(
        user_site, "compare", "--backends", "site_linear", "--config", "tiny.toml", "--out",
        "report", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the display (progress on: the command's default): stages, chain steps, time left
    assert "stages [" in proc.stderr and "chain steps" in proc.stderr, proc.stderr[-2000:]
    assert " left" in proc.stderr, proc.stderr[-2000:]
    table = pd.read_csv(tmp_path / "report" / "comparison.csv")
    runs = set(table["run"])
    assert {f"site_linear/{m}/{r}" for m in ("mean", "draws") for r in ("none", "cd")} <= runs
    assert (tmp_path / "report" / "report.html").exists()
    assert (tmp_path / "report" / "backends" / "site_linear" / "w.npz").exists()
