"""The benchmark runner's smoke mode: it runs every section and writes well-formed results.

The smoke run happens once, in a subprocess (smoke mode switches JAX to fast, unoptimised
compilation, which must not leak into the other tests), from the repository root where
``bench`` lives. No timing is asserted: the numbers of a smoke run mean nothing.

CI time (``tests/_ci_legs.py``): the smoke run (about 2 minutes on 2 cores) runs on CI's leg 1
only; the LJ cluster's compare test runs on leg 2.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _ci_legs import runs_here

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (ROOT / "bench" / "runner.py").exists(), reason="bench/ is not in this checkout"
)

SECTIONS = (
    "kernel_overhead",
    "surrogate_overhead",
    "ensemble_scaling",
    "throughput",
    "ess",
    "end_to_end",
    "size_scaling",
    "delayed_acceptance",
    "chain_parallel",
)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Run ``python -m bench --smoke --out DIR`` once; its folder, stdout and exit code."""
    if not runs_here(1):
        pytest.skip("CI time: the bench's smoke run runs on CI's leg 1 (UQMCMC_ALL_LEGS=1: here)")
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
    from bench import report

    out, proc = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for title in ("1. Kernel overhead", "2. Surrogate overhead", "3. Ensemble scaling",
                  "3b. Throughput", "4. Effective samples", "5. End-to-end", "6. Time per step",
                  "7. Delayed acceptance", "8. Chain-parallel"):  # fmt: skip
        assert title in proc.stdout
    assert "failed:" not in proc.stdout
    # the goals table comes last, after every section
    goals = proc.stdout.rindex("\nGoals\n")
    assert goals > proc.stdout.rindex("8. Chain-parallel")
    for key, *_ in report.GOALS:
        assert f"({key}) " in proc.stdout[goals:]


def test_json_is_complete_and_finite(smoke):
    from bench import report

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
    e2e = res["sections"]["end_to_end"]["rows"]
    assert [r["cache"] for r in e2e] == ["cold", "warm"]  # the rerun, same cache folder
    assert e2e[0]["command"] == e2e[1]["command"]
    for row in e2e:
        assert row["exit_code"] == 0 and row["peak_rss_mb"] > 10
    for row in res["sections"]["size_scaling"]["rows"]:
        assert len(row["step_us"]) == 2 and math.isfinite(row["slope"])
    # every goal listed; the smoke run has no `compare` command, so (a)-(c) are not measured
    goals = {g["goal"]: g for g in res["goals"]}
    assert list(goals) == [key for key, *_ in report.GOALS]
    assert {goals[k]["status"] for k in "abc"} == {"not measured"}
    for key in ("d", "e1", "e2", "f", "g"):
        assert goals[key]["status"] in ("met", "missed"), goals[key]
        assert math.isfinite(goals[key]["value"]), goals[key]
    # (h) reads the energy rows; at smoke sizes none has ESS >= 100, so it is missed, unvalued
    assert goals["h"]["status"] == "missed", goals["h"]
    assert goals["h"]["measured"].startswith("no reliable row"), goals["h"]


def test_throughput_rows_are_finite_and_positive(smoke):
    out, _ = smoke
    rows = _results(out)["sections"]["throughput"]["rows"]
    assert [r["kind"] for r in rows] == ["matmul", "conv", "forward", "forward"]
    assert [r.get("mode") for r in rows[2:]] == ["draws", "mean"]
    assert [r["goal"] for r in rows[2:]] == [0.5, 0.3]
    for row in rows:
        for key in ("flops", "time_us", "gflops", "fraction", "compile_s"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row["what"], key)
            assert row[key] > 0, (row["what"], key)
        assert row["flops_source"] in ("xla", "analytic"), row
    assert rows[0]["fraction"] == 1.0  # the matmul is the reference
    n = rows[0]["batch"]
    assert rows[0]["flops"] == pytest.approx(2 * n**3, rel=0.01)  # XLA's count: 2 n^3
    assert rows[2]["batch"] > rows[3]["batch"]  # draws batch = mean batch x n_draws
    assert rows[2]["network"].startswith("RCNN(") and rows[2]["params"] > 0


def test_markdown_table_is_well_formed(smoke):
    out, _ = smoke
    md = (out / "latest.md").read_text()
    res = _results(out)
    assert res["meta"]["date"][:10] in md and res["meta"]["machine"]["cpu"] in md
    assert md.count("\n### ") == len(SECTIONS) + 1  # the goals, then every section
    assert md.index("\n### Goals") < md.index("\n### 1. Kernel overhead")
    tables = [block for block in md.split("\n\n") if block.startswith("| ")]
    assert len(tables) == len(SECTIONS) + 1
    for block in tables:
        lines = block.splitlines()
        assert set(lines[1].replace(" ", "")) <= {"|", "-"}  # the header rule
        # every row has the header's number of cells (escaped pipes do not split cells)
        widths = {len(line.replace("\\|", "").split("|")) for line in lines}
        assert len(widths) == 1, block


def test_goals_table_lists_every_goal_and_not_measured_for_missing_sections():
    """Fast: from hand-made results, no bench run. A missing or failed section gives "not
    measured" (never an error); present rows give "met" or "missed"."""
    from bench import report

    keys = [key for key, *_ in report.GOALS]
    assert keys == ["a", "b", "c", "d", "e1", "e2", "f", "g", "h"]
    empty = report.goals({"sections": {}})
    assert [g["goal"] for g in empty] == keys
    assert {g["status"] for g in empty} == {"not measured"}
    text = report.goals_text(empty)
    assert all(f"({key}) " in text for key in keys) and "0 met, 0 missed, 9 not measured" in text

    quick = "uqmcmc compare --quick --no-progress"
    results = {
        "sections": {
            "end_to_end": {"rows": [
                {"command": quick, "wall_s": 50.0, "exit_code": 0, "cache": "cold"},
                {"command": quick, "wall_s": 45.0, "exit_code": 0, "cache": "warm"},
                {"command": "uqmcmc compare --no-progress", "wall_s": 300.0, "exit_code": 1},
            ]},
            "ensemble_scaling": {"rows": [
                {"what": "predict_mean_var, batch 2x8x8", "ratio": 7.0, "n_members": 10},
                {"what": "predict_mean_var, batch 512x8x8", "ratio": 24.0, "n_members": 10},
                {"what": "training, per epoch (180 configs)", "ratio": 8.0, "n_members": 10},
            ]},
            "throughput": {"rows": [
                {"kind": "forward", "mode": "draws", "fraction": 0.6, "gflops": 30.0,
                 "batch": 384, "goal": 0.5},
                {"kind": "forward", "mode": "mean", "fraction": None, "batch": 48, "goal": 0.3},
            ]},
            "surrogate_overhead": {"rows": [], "error": "ValueError: boom"},
            "chain_parallel": {"rows": [{"sampler": "mala", "L": 8, "chains": 16, "devices": 2,
                                         "ratio": 1.6}]},
            "delayed_acceptance": {"rows": [
                {"surrogate": "exact", "ratio_sd": 1.0},
                # the best ratio, but its chain is off (z 5): not counted
                {"surrogate": "ensemble energy", "k": 8, "ratio_sd": 0.05, "ratio_abs_m": 0.1,
                 "reliable": True, "z_abs_m": 0.3, "z_sd": 5.0},
                {"surrogate": "ensemble energy", "k": 4, "ratio_sd": 0.25, "ratio_abs_m": 0.2,
                 "reliable": True, "z_abs_m": -1.0, "z_sd": 0.5},
            ]},
        }
    }  # fmt: skip
    status = {g["goal"]: g["status"] for g in report.goals(results)}
    assert status == {
        "a": "missed",  # exit code 1
        "b": "met",
        "c": "missed",  # 45 s > 40 s
        "d": "missed",  # 24 > 11 at batch 512
        "e1": "met",
        "e2": "not measured",  # no finite fraction
        "f": "not measured",  # the section failed
        "g": "met",
        "h": "missed",  # 4x at k = 4, the only sound row
    }
    by_key = {g["goal"]: g for g in report.goals(results)}
    assert "512x8x8" in by_key["d"]["measured"] and by_key["d"]["value"] == 24.0
    assert by_key["f"]["measured"] == "section failed"
    assert by_key["h"]["measured"].startswith("4.0x at k = 4") and by_key["h"]["value"] == 4.0
    md = report.goals_text(report.goals(results), "markdown")
    assert md.startswith("### Goals") and md.count("\n| ") == 2 + len(keys)


@pytest.mark.parametrize("mode", ["mean", "draws"])
def test_bare_program_replays_exactly_the_recorded_calls(mode):
    """Section 2's bare program makes the step's network calls, no fewer and no more (a call
    it skips makes every step look slow; one it adds, fast)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import jax

    from bench.surrogates import Recorder, bare_program, network_calls
    from uqmcmc.mcmc import GradientDelta, mala
    from uqmcmc.targets import Phi4
    from uqmcmc.uq.exact import ExactSurrogate
    from uqmcmc.workflows import PENALTY

    backend = ExactSurrogate(Phi4(4, 0.5, 1.0), "grad")
    n_draws = 4 if mode == "draws" else None

    def algorithm_of(b):
        return mala(GradientDelta(b, mode=mode, n_draws=n_draws), 0.1, acceptance=PENALTY[mode])

    x = jax.numpy.zeros((4, 4))
    calls = network_calls(backend, algorithm_of, x)
    rec = Recorder(backend)
    jax.eval_shape(bare_program(rec, calls, mean_only=mode == "draws"), jax.random.key(0), x)
    assert rec.calls == calls and len(calls) == (1 if mode == "mean" else 2), calls
