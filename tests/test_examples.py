"""Every example runs with ``--smoke``: exit code 0, valid PNG figures, summary, closing note.

The scripts run as subprocesses, two at a time (the machine's two cores), into a temporary
``--out`` folder each; the tests then read what each one left behind.

CI time (``tests/_ci_legs.py``): each example runs on one of CI's two legs, alternating down
:data:`EXAMPLES`, so every CI run runs every example once; the two costliest
(``compare_backends``, ``custom_energy``) fall on different legs.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _ci_legs import runs_here
from PIL import Image

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = (
    "phi4_exact",
    "train_rcnn",
    "prediction_noise",
    "naive_vs_penalty",
    "compare_backends",
    "custom_energy",
)
#: The examples this Python runs (see the module's docstring).
THIS_LEG = tuple(name for i, name in enumerate(EXAMPLES) if runs_here(1 + i % 2))
TIMEOUT = 600  # seconds per script; the smoke runs (compiled unoptimised) take under a minute


def _run(name: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore::FutureWarning"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=out,
    )


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    outs = {name: tmp_path_factory.mktemp(name) for name in THIS_LEG}
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(THIS_LEG, pool.map(lambda n: _run(n, outs[n]), THIS_LEG), strict=True))
    return {name: (done[name], outs[name]) for name in THIS_LEG}


def test_every_example_is_tested():
    scripts = {p.stem for p in EXAMPLES_DIR.glob("*.py") if not p.stem.startswith("_")}
    assert scripts == set(EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_smoke(smoke_runs, name):
    if name not in smoke_runs:
        pytest.skip("CI time: this example runs on CI's other leg (UQMCMC_ALL_LEGS=1: here)")
    proc, out = smoke_runs[name]
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "What this shows:" in proc.stdout, proc.stdout[-2000:]
    note = proc.stdout.split("What this shows:", 1)[1]
    assert len(note.split()) > 40, note  # the closing paragraph is there

    summary = json.loads((out / "summary.json").read_text())
    assert summary["example"] == name and summary["smoke"] is True
    assert summary["figures"], "no figure written"
    for fig in summary["figures"]:
        path = out / fig
        assert path.suffix == ".png" and path.stat().st_size > 1000, path
        with Image.open(path) as im:
            im.verify()
    assert math.isfinite(summary["seconds"])


def test_examples_report_numbers(smoke_runs):
    """The numbers behind each closing note are finite where the smoke run can make them (of
    the examples this leg runs)."""
    if "train_rcnn" in smoke_runs:
        _, out = smoke_runs["train_rcnn"]
        errors = json.loads((out / "summary.json").read_text())["relative_rmse"]
        assert all(0 < e < 10 for e in errors.values()), errors
    if "naive_vs_penalty" in smoke_runs:
        _, out = smoke_runs["naive_vs_penalty"]
        summary = json.loads((out / "summary.json").read_text())
        assert set(summary["z"]) >= {"exact ΔS", "one network", "ensemble draws + CD"}
        findings = summary["findings"]
        assert findings and all(isinstance(v, bool) for v in findings.values()), findings
    if "compare_backends" in smoke_runs:
        _, out = smoke_runs["compare_backends"]
        assert (out / "report" / "report.html").exists()
    if "custom_energy" in smoke_runs:
        _, out = smoke_runs["custom_energy"]
        summary = json.loads((out / "summary.json").read_text())
        for run in ("same-temperature", "trained-at-0.25"):
            html, shift = out / run / "report.html", out / run / "domain_shift.csv"
            assert html.exists() and shift.exists(), run
        shares = summary["out_of_range"]
        assert set(shares) == {"same", "shifted"}
        assert all(0 <= s <= 1 for v in shares.values() for s in v.values()), shares
