# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf COMMAND`: the command list, dispatch, unknown commands, the script."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from flamenerf import __main__ as dispatcher

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = (
    "train",
    "eval",
    "render",
    "plots",
    "capture",
    "synthetic",
    "validate",
    "head",
    "export",
)


def test_every_command_is_listed_with_a_one_line_description(capsys):
    assert tuple(dispatcher.COMMANDS) == EXPECTED
    assert dispatcher.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, about) in dispatcher.COMMANDS.items():
        assert f"  {name}  " in out and about in out
        assert about and "\n" not in about
    assert dispatcher.main(["-h"]) == 0
    assert capsys.readouterr().out == out
    assert dispatcher.main([]) == 2  # no command: the list, as a usage error
    assert capsys.readouterr().err.strip() == out.strip()


def test_every_command_runs_its_module_main():
    for name, (module_name, _) in dispatcher.COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(module.main), name


@pytest.mark.parametrize("command", EXPECTED)
def test_dispatch_to_a_commands_help(command, capsys):
    module = importlib.import_module(dispatcher.COMMANDS[command][0])
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    direct = capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        dispatcher.main([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out == direct and direct.startswith("usage: ")


def test_dispatch_passes_the_arguments_and_the_exit_status(tmp_path, capsys):
    assert dispatcher.main(["plots", "--base_folder", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err == f"error: {tmp_path / 'metrics.jsonl'}: metrics file not found\n"
    )


def test_unknown_command_exits_2_with_the_list(capsys):
    assert dispatcher.main(["evaluate", "--base_folder", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'evaluate'\n")
    assert all(f"  {name}  " in err for name in EXPECTED)


def test_python_dash_m_flamenerf():
    run = lambda *args: subprocess.run(
        [sys.executable, "-m", "flamenerf", *args], capture_output=True, text=True, cwd=ROOT
    )
    listed = run("--help")
    assert listed.returncode == 0 and "  validate  " in listed.stdout
    unknown = run("nope")
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr
    plots = run("plots", "--help")
    assert plots.returncode == 0 and plots.stdout.startswith("usage: python -m flamenerf.plots")


def test_setup_installs_the_flamenerf_script():
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"
    )
    entry_points = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    assert entry_points == {"console_scripts": ["flamenerf=flamenerf.__main__:main"]}
    module, function = entry_points["console_scripts"][0].split("=")[1].split(":")
    assert getattr(importlib.import_module(module), function) is dispatcher.main
