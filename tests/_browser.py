"""Headless Chromium for the report tests: load a page, report every image and the headings.

``CHROMIUM`` is the browser's path, or ``None`` when it is not installed (Debian: ``apt-get
install chromium``; ``.ci/run`` installs it, so CI never skips).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)

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
# <img> reports, and the report's section headings in document order, into the DOM, which
# --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    images: Array.from(document.images, (img) => ({
      alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
    })),
    headings: Array.from(document.querySelectorAll("h2"), (h) => h.textContent.trim()),
  });
  document.body.appendChild(out);
});
</script>
"""


def probe_page(page: Path, profile: Path) -> dict:
    """Load ``page`` (an HTML file) with :data:`PROBE` in headless Chromium; returns
    ``{"images": [...], "headings": [...]}`` as the browser saw them."""
    html = page.read_text(encoding="utf-8")
    assert html.count("</body>") == 1
    probe = page.with_name("probe.html")  # beside the page: same relative links
    probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", probe.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    probe.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"probe did not run; stderr: {done.stderr[-2000:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(text.replace("&amp;", "&"))
