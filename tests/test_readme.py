"""The README's Quick start: exactly two commands, the second being what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_has_the_main_job_and_the_tests():
    install_and_run, install_and_test = _quick_start_commands()
    assert install_and_run.endswith(".venv/bin/uqmcmc compare")
    assert install_and_test.endswith('pip install ".[test]" && .venv/bin/python -m pytest')


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = _quick_start_commands()[1].replace(
        'pip install ".[test]"', 'pip install -q ".[test]"'
    )
    assert command in ci
