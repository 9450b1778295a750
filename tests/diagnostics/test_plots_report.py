"""Plots and the report writer: every section present, every PNG a valid image."""

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from uqmcmc import _arviz
from uqmcmc.diagnostics import (
    check_identities,
    compare_to_exact,
    epistemic_spread,
    plot_acceptance,
    plot_calibration,
    plot_forest,
    plot_histograms,
    plot_predicted_vs_true,
    plot_rank,
    plot_trace,
    report_sections,
    write_report,
)
from uqmcmc.diagnostics.plots import _coverage
from uqmcmc.targets import Gaussian


def _run(rng, shift=0.0, n=(4, 300)):
    """A synthetic φ⁴-like run: observables from a Gaussian magnetisation, kernel stats."""
    m = shift + 0.5 * rng.normal(size=n)
    posterior = {
        "m": m,
        "abs_m": np.abs(m),
        "m2": m**2,
        "m4": m**4,
        "action_density": 0.8 + 0.1 * rng.normal(size=n),
        "sd": 1 + 0.3 * rng.normal(size=n),
    }
    stats = {
        "acceptance_rate": rng.uniform(0.4, 0.8, size=n),
        "penalty": rng.uniform(0, 0.3, size=n),
        "delta_var": rng.uniform(0, 0.5, size=n),
    }
    return _arviz.make_idata(
        posterior, stats, attrs={"target": "Phi4", "L": 4, "beta": 0.5, "g": 1.0}
    )


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    exact = _run(rng)
    runs = {"good": _run(rng), "biased": _run(rng, shift=0.3)}
    comparison = compare_to_exact(runs, exact)
    members = {"ens": [_run(rng, shift=s) for s in (-0.02, 0.0, 0.03)]}
    epistemic = epistemic_spread(members, exact)
    draws = rng.normal(size=(2, 50, 3))
    identities = check_identities(Gaussian(np.zeros(3), np.eye(3)), {"good": draws})
    y = rng.normal(size=(64, 4, 4))
    backends = {
        "calibrated": (y + 0.2 * rng.normal(size=y.shape), np.full(y.shape, 0.04), y),
        "overconfident": (y + 0.2 * rng.normal(size=y.shape), np.full(y.shape, 0.01), y),
    }
    figures = {
        "Forest plot": plot_forest(comparison, epistemic),
        "Trace plots": plot_trace(runs["biased"]),
        "Rank plots": plot_rank(runs["biased"]),
        "Histograms of M": plot_histograms(runs, exact),
        "Acceptance and penalty": plot_acceptance(runs),
        "Calibration": plot_calibration(backends),
        "Predicted vs true": plot_predicted_vs_true(backends),
    }
    return {
        "runs": runs,
        "exact": exact,
        "comparison": comparison,
        "epistemic": epistemic,
        "identities": identities,
        "figures": figures,
        "backends": backends,
    }


def _valid_png(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()  # decodes every pixel: fails on a truncated or corrupt file
    return image.size


def test_report_has_every_section_and_valid_images(inputs, tmp_path):
    sections = report_sections(
        settings={"L": 4, "beta": 0.5, "backends": ["ensemble"]},
        comparison=inputs["comparison"],
        epistemic=inputs["epistemic"],
        identities=inputs["identities"],
        figures=inputs["figures"],
    )
    titles = [s.title for s in sections]
    expected = ["Settings", "Comparison with the exact chain", "Epistemic error bars"]
    expected += ["Exact-identity checks", *inputs["figures"]]
    assert titles == expected
    written = write_report(tmp_path, title="Test report", sections=sections)

    page = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    for title in titles:
        assert f">{title}</h2>" in page
        assert f"## {title}" in md
    assert "FAIL" in page and "PASS" in page  # the pass/fail column
    n_runs = inputs["comparison"].run.nunique()
    level = inputs["comparison"].attrs["level"]
    assert f"about {level * n_runs:.1f} of these {n_runs} would fail by chance" in md

    # every plot embedded once in the self-contained HTML, each a valid PNG
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(inputs["figures"])
    assert all(min(_valid_png(base64.b64decode(b))) > 100 for b in embedded)
    assert "src=" not in re.sub(r'src="data:image/png;base64,[^"]+"', "", page)  # nothing external

    # the Markdown's PNGs are beside it, valid, and referenced
    assert len(written["png"]) == len(inputs["figures"])
    for png in written["png"]:
        assert png.parent == tmp_path and f"]({png.name})" in md
        _valid_png(png.read_bytes())

    table = pd.read_csv(tmp_path / "comparison.csv")
    assert len(table) == len(inputs["comparison"])
    assert set(table.columns) == set(inputs["comparison"].columns)
    for name in ("settings", "epistemic", "identities"):
        assert (tmp_path / f"{name}.csv").exists()


def test_plots_save_png(inputs, tmp_path):
    path = tmp_path / "forest.png"
    fig = plot_forest(inputs["comparison"], path=path)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == inputs["comparison"].observable.nunique()
    _valid_png(path.read_bytes())


def test_coverage_of_calibrated_and_overconfident_backends():
    rng = np.random.default_rng(1)
    n = 20_000
    mean = rng.normal(size=n)
    y = mean + np.sqrt(0.75) * rng.normal(size=n)  # y | mean ~ N(mean, 0.75)
    levels = np.array([0.5, 0.9])
    good = _coverage(mean, np.full(n, 0.75), y, levels)
    err = np.sqrt(levels * (1 - levels) / n)  # binomial error of each coverage
    assert (np.abs(good - levels) / err < 4).all(), good
    over = _coverage(mean, np.full(n, 0.25), y, levels)
    assert (over < levels - 0.1).all()


def test_bad_plot_input(inputs):
    y = np.zeros(10)
    with pytest.raises(ValueError, match="variance"):
        plot_calibration({"a": (y, None, y)})
    with pytest.raises(ValueError, match="shape"):
        plot_predicted_vs_true({"a": (y, None, np.zeros(5))})
    with pytest.raises(ValueError, match="var_names"):
        plot_trace(inputs["exact"], ["nope"])
    with pytest.raises(ValueError, match="levels"):
        plot_calibration(inputs["backends"], levels=[0.5, 1.0])
