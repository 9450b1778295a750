import subprocess
import sys

import pytest

from uqmcmc import _arviz
from uqmcmc.cli import main


@pytest.mark.slow
def test_exact_writes_netcdf_and_table(tmp_path, capsys):
    code = main(
        [
            "exact",
            "--L",
            "4",
            "--beta",
            "0.5",
            "--chains",
            "4",
            "--steps",
            "300",
            "--warmup",
            "50",
            "--thin",
            "2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for name in ("abs_m", "m2", "action_density", "binder", "chi_abs", "R-hat"):
        assert name in out
    idata = _arviz.load(tmp_path / "exact.nc")
    post = _arviz.group(idata, "posterior")
    assert post["abs_m"].shape == (4, 150)
    assert _arviz.attrs(idata)["L"] == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--L", "1"], "L must be an integer >= 2"),
        (["--g", "-1"], "g must be >= 0"),
        (["--chains", "1"], "chains must be an integer >= 2"),
        (["--steps", "0"], "steps must be an integer >= 1"),
    ],
)
def test_bad_arguments_give_one_line(args, message, capsys):
    assert main(["exact", *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_command_line_error_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "uqmcmc.cli", "exact", "--beta", "inf"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "must be a finite number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_exact_interrupted_then_resumed_is_bit_identical(tmp_path, monkeypatch, capsys):
    """Ctrl-C part-way through ``uqmcmc exact``: one line with the command that resumes, and
    ``uqmcmc exact --resume OUT`` finishes from the last checkpoint to the very draws of an
    uninterrupted run."""
    import importlib

    import numpy as np

    exact_module = importlib.import_module("uqmcmc.workflows.exact")
    args = ["exact", "--L", "4", "--beta", "0.5", "--chains", "2", "--steps", "400",
            "--warmup", "40", "--thin", "2", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    real, calls = exact_module.run_chains, []

    def stopping(*a, **kw):
        def progress(n):
            calls.append(n)
            if len(calls) == 25:  # 20 warm-up chunks, then 5 sampling chunks
                raise KeyboardInterrupt

        return real(*a, **{**kw, "progress": progress})

    out = tmp_path / "rep"
    with monkeypatch.context() as m:
        m.setattr(exact_module, "run_chains", stopping)
        assert main([*args, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted during chains" in err and "resume: uqmcmc exact --resume" in err
    kept = tmp_path / "rep.incomplete"
    saved = kept / "checkpoints" / "chains"
    assert (saved / "state.npz").is_file() and len(list(saved.glob("draws-*.npz"))) == 5
    assert not out.exists()
    with pytest.raises(ValueError, match=r"other settings: steps \(500, the run has 400\)"):
        exact_module.run_exact(resume=out, steps=500, progress=False)  # library: same check
    assert main(["exact", "--resume", str(out), "--steps", "500"]) == 2
    assert "drop --steps" in capsys.readouterr().err
    assert main(["exact", "--resume", str(out), "--no-progress"]) == 0
    assert "2 chains x 400 sweeps" in capsys.readouterr().out
    assert not kept.exists() and not (out / "checkpoints").exists()
    a = _arviz.group(_arviz.load(tmp_path / "ref" / "exact.nc"), "posterior")
    b = _arviz.group(_arviz.load(out / "exact.nc"), "posterior")
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
