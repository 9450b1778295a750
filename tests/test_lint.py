"""The code is ``ruff`` clean (lint and format), as the contributing rules ask."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = [p for p in ("uqmcmc", "tests", "examples", "bench") if (ROOT / p).exists()]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    return subprocess.run([exe, *args, *PATHS], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check():
    proc = _ruff("check")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_ruff_format():
    proc = _ruff("format", "--check")
    assert proc.returncode == 0, proc.stdout[-4000:]
