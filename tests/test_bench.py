"""The benchmark runner's smoke mode: it runs every section and writes well-formed results.

The smoke run happens once, in a subprocess (smoke mode switches JAX to fast, unoptimised
compilation, which must not leak into the other tests), from the repository root where
``bench`` lives. No timing is asserted: the numbers of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (ROOT / "bench" / "runner.py").exists(), reason="bench/ is not in this checkout"
)

SECTIONS = (
    "kernel_overhead",
    "surrogate_overhead",
    "ensemble_scaling",
    "ess",
    "end_to_end",
    "size_scaling",
    "delayed_acceptance",
    "chain_parallel",
)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Run ``python -m bench --smoke --out DIR`` once; its folder, stdout and exit code."""
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return out, proc


def _results(out: Path) -> dict:
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, f"expected one JSON file in {out}, got {files}"
    return json.loads(files[0].read_text())


@pytest.mark.slow
def test_smoke_run_succeeds_and_prints_every_table(smoke):
    out, proc = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for title in ("1. Kernel overhead", "2. Surrogate overhead", "3. Ensemble scaling",
                  "4. Effective samples", "5. End-to-end", "6. Time per step",
                  "7. Delayed acceptance", "8. Chain-parallel"):  # fmt: skip
        assert title in proc.stdout
    assert "failed:" not in proc.stdout


def test_json_is_complete_and_finite(smoke):
    out, _ = smoke
    res = _results(out)
    meta = res["meta"]
    assert meta["mode"] == "smoke"
    assert meta["machine"]["cpu"] and meta["machine"]["cores"] >= 1
    assert {"jax", "blackjax"} <= set(meta["machine"]["versions"])
    assert tuple(res["sections"]) == SECTIONS
    for name, section in res["sections"].items():
        assert "error" not in section, (name, section.get("error"))
        assert section["rows"], name
    kernel = res["sections"]["kernel_overhead"]["rows"][0]
    for key in ("uqmcmc_us", "blackjax_us", "ratio", "compile_uqmcmc_s", "sampler_copies"):
        assert math.isfinite(kernel[key]) and kernel[key] > 0, key
    surrogate = res["sections"]["surrogate_overhead"]["rows"][0]
    assert surrogate["calls"].startswith("draws[3, n=")  # the recorded network calls
    assert surrogate["step_us"] > 0 and surrogate["bare_us"] > 0
    whats = [r["what"] for r in res["sections"]["ensemble_scaling"]["rows"]]
    assert any(w.startswith("predict") for w in whats) and any(w.startswith("train") for w in whats)
    chains = {r["chain"] for r in res["sections"]["ess"]["rows"]}
    assert {"exact checkerboard", "exact MALA", "ensemble draws+penalty"} <= chains
    for row in res["sections"]["ess"]["rows"]:
        assert 0.0 <= row["acceptance"] <= 1.0 and row["ess_abs_m"] > 0
    e2e = res["sections"]["end_to_end"]["rows"][0]
    assert e2e["exit_code"] == 0 and e2e["peak_rss_mb"] > 10
    for row in res["sections"]["size_scaling"]["rows"]:
        assert len(row["step_us"]) == 2 and math.isfinite(row["slope"])


def test_markdown_table_is_well_formed(smoke):
    out, _ = smoke
    md = (out / "latest.md").read_text()
    res = _results(out)
    assert res["meta"]["date"][:10] in md and res["meta"]["machine"]["cpu"] in md
    assert md.count("\n### ") == len(SECTIONS)
    tables = [block for block in md.split("\n\n") if block.startswith("| ")]
    assert len(tables) == len(SECTIONS)
    for block in tables:
        lines = block.splitlines()
        assert set(lines[1].replace(" ", "")) <= {"|", "-"}  # the header rule
        # every row has the header's number of cells (escaped pipes do not split cells)
        widths = {len(line.replace("\\|", "").split("|")) for line in lines}
        assert len(widths) == 1, block
