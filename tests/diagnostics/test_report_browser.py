"""The HTML report in a real browser: headless Chromium loads every embedded image.

Skipped when Chromium is not installed (Debian: ``apt-get install chromium``). The image data
themselves are checked without a browser in ``test_plots_report.py`` (every embedded PNG is
decoded with Pillow), which always runs.
"""

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from matplotlib.figure import Figure

from uqmcmc.diagnostics import Section, write_report

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--virtual-time-budget=5000",
]

# Runs on the window's load event (after every image has loaded or failed) and writes what each
# <img> reports into the DOM, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "img-check";
  out.textContent = JSON.stringify(Array.from(document.images, (img) => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
  })));
  document.body.appendChild(out);
});
</script>
"""


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
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("</body>") == 1
    # a copy of the report with the probe script, beside it (same folder, same relative links)
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")

    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
    done = subprocess.run(
        [*cmd, probe.as_uri()], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="img-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"probe did not run; stderr: {done.stderr[-2000:]}"
    images = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))

    # every figure is there, fully loaded, at its pixel size (figsize x 100 dpi)
    assert [(i["alt"], i["width"], i["height"]) for i in images] == [
        ("Plots 1", 300, 200),
        ("Plots 2", 400, 300),
    ]
    assert all(i["complete"] for i in images)
