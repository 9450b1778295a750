"""The documentation site builds with warnings as errors (``mkdocs build --strict``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytest.importorskip("mkdocs", reason="the docs need the test extra (mkdocs, mkdocstrings)")
pytest.importorskip("mkdocstrings_handlers.python", reason="needs mkdocstrings[python]")


@pytest.mark.slow
def test_docs_build_strict(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-5000:]
    # every page of the nav was rendered, and the API reference holds the documented objects
    for page in ("index.html", "concepts/index.html", "kernels/index.html", "report/index.html"):
        assert (site / page).exists(), page
    api = (site / "api" / "uq" / "index.html").read_text()
    for name in ("uqmcmc.uq.ensemble.DeepEnsemble", "uqmcmc.uq.bnn.NumPyroBNN"):
        assert f'id="{name}"' in api, name
    mcmc = (site / "api" / "mcmc" / "index.html").read_text()
    assert 'id="uqmcmc.mcmc.estimators.GradientDelta"' in mcmc


def test_tutorial_figures_exist_and_are_small():
    """Every image a tutorial page shows is in docs/ and under 200 kB."""
    pages = sorted((DOCS / "examples").glob("*.md"))
    assert len(pages) >= 7
    shown = []
    for page in pages:
        for line in page.read_text().splitlines():
            if line.startswith("![") and "](" in line:
                shown.append((page.parent / line.split("](", 1)[1].split(")", 1)[0]).resolve())
    assert len(shown) >= 6, shown
    for path in shown:
        assert path.exists(), path
        assert path.stat().st_size < 200_000, (path, path.stat().st_size)
