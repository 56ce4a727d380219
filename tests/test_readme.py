# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The README's commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim():
    blocks = bash_blocks((ROOT / "README.md").read_text())
    test_command = next(b for b in blocks if "pytest" in b)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_readme_opens_with_install_and_run_then_test():
    blocks = bash_blocks((ROOT / "README.md").read_text())
    assert "pip install" in blocks[0] and "python -m flamenerf." in blocks[0]
    assert "pytest" in blocks[1]
