"""The HTML report in a real browser: headless Chromium loads every embedded image.

Skipped when Chromium is not installed (Debian: ``apt-get install chromium``). The image data
themselves are checked without a browser in ``test_plots_report.py`` (every embedded PNG is
decoded with Pillow), which always runs.
"""

import pandas as pd
import pytest
from _browser import CHROMIUM, probe_page
from matplotlib.figure import Figure

from uqmcmc.diagnostics import Section, write_report

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    ax = fig.subplots()
    ax.plot([0, 1, 2], [0, 1, 4])
    return fig


def test_report_images_load_in_headless_chromium(tmp_path):
    sections = [
        Section("Numbers", "Two rows.", pd.DataFrame({"run": ["a", "b"], "pass": [True, False]})),
        Section("Plots", figures=[_figure(3, 2), _figure(4, 3)]),
    ]
    out = tmp_path / "report"
    write_report(out, title="Browser check", sections=sections)
    seen = probe_page(out / "report.html", tmp_path / "profile")
    images = seen["images"]
    assert seen["headings"] == ["Numbers", "Plots"]

    # every figure is there, fully loaded, at its pixel size (figsize x 100 dpi)
    assert [(i["alt"], i["width"], i["height"]) for i in images] == [
        ("Plots 1", 300, 200),
        ("Plots 2", 400, 300),
    ]
    assert all(i["complete"] for i in images)
