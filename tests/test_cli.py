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
