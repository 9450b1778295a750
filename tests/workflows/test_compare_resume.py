"""Checkpoint and resume of ``uqmcmc compare``: a run stopped in any stage (an error, Ctrl-C,
SIGKILL) and resumed gives the same comparison table as the run that was not stopped.

The stop in training recomputes every piece but the exact chain and the control, so it is
also the same-seed-same-numbers test of the whole workflow."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _ci_legs import ci_leg

from uqmcmc import _arviz
from uqmcmc.cli import main
from uqmcmc.workflows import CompareConfig, run_compare
from uqmcmc.workflows.compare_progress import ChainMeter
from uqmcmc.workflows.resume import CHECKPOINTS, RunCancelled, StageCheckpoints, find_unfinished

compare_module = importlib.import_module("uqmcmc.workflows.compare")

#: A tiny run with every kind of piece: exact chain, control, a backend, its chain pairs and
#: per-draw chains, the positive control and the noise sweep.
TINY = dict(
    backends=("last_layer",), steps=40, warmup=20, exact_steps=200, member_steps=40,
    n_train=16, n_test=4, epochs=2, identity_positions=8, seed=3,
)  # fmt: skip


def tiny(out: Path) -> CompareConfig:
    return CompareConfig.quick_config(**TINY, out=str(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    """comparison.csv of the run that is not stopped."""
    out = tmp_path_factory.mktemp("ref") / "rep"
    run_compare(tiny(out), progress=False)
    assert not (out / CHECKPOINTS).exists()  # removed once the report is complete
    return (out / "comparison.csv").read_text()


def _stop_in(monkeypatch, where: str, exc: BaseException) -> None:
    """Make the run fail in ``where``: ``"training"`` or ``"report"``."""
    if where == "training":

        def fit(*args, **kwargs):
            raise exc

        monkeypatch.setattr(compare_module.registry, "fit", fit)
        return
    monkeypatch.setattr(
        compare_module, "write_compare_report", lambda _: (_ for _ in ()).throw(exc)
    )


@pytest.mark.slow
@ci_leg(1, "a resumed run (1.5 min; the SIGKILL one runs on leg 2)")
def test_a_run_stopped_twice_resumes_to_the_same_table(tmp_path, monkeypatch, reference):
    """Stopped by Ctrl-C in training, resumed; the resumed run stopped by an error in the
    report, resumed again: the table of the run that was never stopped. The second stop finds
    every chain piece kept, so none is run again."""
    out = tmp_path / "rep"
    with monkeypatch.context() as m:
        _stop_in(m, "training", KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt) as info:
            run_compare(tiny(out), progress=False)
    kept = find_unfinished(out)
    assert kept.name == "rep.incomplete" and "--resume" in info.value.uqmcmc_kept
    manifest = json.loads((kept / "manifest.json").read_text())
    done = {k for k, v in manifest["stages"].items() if v["status"] == "done"}
    assert {"exact", "exact_mala", "dataset"} <= done
    assert {"exact", "exact-mala"} <= {p.name for p in (kept / CHECKPOINTS).iterdir()}

    with monkeypatch.context() as m:
        _stop_in(m, "report", RuntimeError("boom"))
        with pytest.raises(RuntimeError, match="boom"):
            run_compare(progress=False, resume=out)
    kept = find_unfinished(out)
    pieces = {p.name for p in (kept / CHECKPOINTS).iterdir()}
    assert {"exact", "exact-mala", "last_layer_mean", "last_layer_draws", "last_layer_members",
            "noise-sweep", "oracle"} <= pieces  # fmt: skip

    res = run_compare(progress=False, resume=out)
    assert res.out == out and not kept.exists()
    assert (out / "comparison.csv").read_text() == reference
    assert not (out / CHECKPOINTS).exists()


def test_resume_refuses_other_settings_and_nothing_to_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "rep"
    with pytest.raises(ValueError, match="nothing to resume"):
        run_compare(progress=False, resume=out)
    with monkeypatch.context() as m:
        _stop_in(m, "training", KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            run_compare(tiny(out), progress=False)
    other = CompareConfig.quick_config(**{**TINY, "steps": 60}, out=str(out))
    with pytest.raises(ValueError, match=r"other settings: steps \(60, the run has 40\)"):
        run_compare(other, progress=False, resume=out)
    assert main(["compare", "--resume", str(out), "--steps", "60"]) == 2
    assert "drop --steps" in capsys.readouterr().err


@pytest.mark.slow
@ci_leg(2, "a resumed run (1.5 min; the one stopped twice runs on leg 1)")
def test_sigkill_during_chains_then_resume_gives_the_same_table(tmp_path, reference):
    """The command killed with SIGKILL (no handler runs) while its chains run, then
    ``uqmcmc compare --resume OUT``: the partial folder is found and finished."""
    config = tmp_path / "run.toml"
    config.write_text(
        "quick = true\n"
        + "".join(
            f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}\n" for k, v in TINY.items()
        )  # fmt: skip
    )
    out = tmp_path / "rep"
    cmd = [sys.executable, "-m", "uqmcmc.cli", "compare", "--config", str(config), "--no-progress"]
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL)
    partial = tmp_path / f".rep.partial-{proc.pid}"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # kill once the training is done
        manifest = partial / "manifest.json"
        if manifest.is_file() and "train_last_layer" in manifest.read_text():
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and partial.is_dir()
    done = subprocess.run(
        [sys.executable, "-m", "uqmcmc.cli", "compare", "--resume", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "comparison.csv").read_text() == reference
    assert not partial.exists()


def test_a_stopped_run_computes_and_writes_nothing_more(tmp_path):
    """What a stop does to the jobs still running: their next chunk raises, and nothing they
    finish afterwards is written (a run resumed in the same process never meets them)."""
    meter, ckpt = ChainMeter(100), StageCheckpoints(tmp_path)
    meter(10)
    meter.cancel()
    with pytest.raises(RunCancelled):
        meter(10)
    assert meter.done == 10

    def compute():
        ckpt.cancel()  # the stop arrives while the piece runs
        return _arviz.make_idata({"x": np.zeros((2, 3))})

    with pytest.raises(RunCancelled, match="while piece 'late' ran"):
        ckpt.piece("late", compute)
    with pytest.raises(RunCancelled, match="before piece 'next'"):
        ckpt.piece("next", compute)
    assert not (tmp_path / CHECKPOINTS).exists()
