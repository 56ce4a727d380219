# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`--help` of every command shows every default once; a flag name means one thing."""

import argparse
import importlib
import re
from pathlib import Path

import pytest

from flamenerf import help_format
from flamenerf.__main__ import COMMANDS
from flamenerf.io.paths import local_path_argument

# The intended meaning of every flag that more than one command uses, and the kind of value it
# takes ("path": a file or folder, "int", "float", "switch": no value). A flag shared by two
# commands must be here, and take this kind of value in each.
SHARED_FLAGS = {
    "--base_folder": ("the experiment folder(s)", "path"),
    "--checkpoint": ("the checkpoint step to restore", "int"),
    "--chunk": ("rays per rendering chunk (TrainConfig.render_chunk)", "int"),
    "--scale": ("the image scale 1, 2, 4 or 8 (DataConfig.scale)", "int"),
    "--flame_model": ("a FLAME model file", "path"),
    "--out": ("where the command writes its output", "path"),
    "--size": ("an image's side in pixels", "int"),
    "--num_expression": ("the number of FLAME expression coefficients used", "int"),
    "--quiet": ("no progress display", "switch"),
    "--fps": ("frames per second of a video or an animation", "float"),
    "--overwrite": ("replace an existing output", "switch"),
    "--coordinator_address": ("host:port of process 0 (jax.distributed)", "path"),
    "--num_processes": ("number of processes (jax.distributed)", "int"),
    "--process_id": ("this process's index (jax.distributed)", "int"),
}

# Numbers of frames: each meaning has its own name, used by one command only.
FRAME_FLAGS = {
    "--num_frames": ("render", "frames a render sweep generates"),
    "--val_frames": ("eval", "how many validation frames to evaluate (the first N)"),
    "--train_frames": ("synthetic", "training frames a synthetic capture has"),
    "--max_frames": ("capture", "at most N frames kept from a video"),
}


class _Parsed(Exception):
    """Raised instead of parsing: carries the command's parser."""


def _parser(module_name: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a command's `main` builds (it is stopped before parsing anything)."""

    def stop(self, *args, **kwargs):
        raise _Parsed(self)

    module = importlib.import_module(module_name)
    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", stop)
        with pytest.raises(_Parsed) as parsed:
            module.main(["--help"])
    return parsed.value.args[0]


@pytest.fixture(scope="module")
def parsers():
    """[(command, "command subcommand" or "command", parser)] over every command."""
    found = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        for command, (module_name, _) in COMMANDS.items():
            parser = _parser(module_name, monkeypatch)
            found.append((command, command, parser))
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    found += [(command, f"{command} {n}", p) for n, p in action.choices.items()]
    return found


def _options(parser: argparse.ArgumentParser):
    return [
        a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
    ]


def _kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "switch"
    paths = {None: "path", str: "path", Path: "path", local_path_argument: "path"}
    return {**paths, int: "int", float: "float"}.get(
        action.type, getattr(action.type, "__name__", str(action.type))
    )


def test_every_command_and_subcommand_is_reached(parsers):
    names = {name for _, name, _ in parsers}
    assert set(COMMANDS) <= names
    assert {"render path", "render expression", "render reanimate"} <= names
    assert {"capture all", "capture frames", "capture fit", "capture check"} <= names


def test_help_shows_every_default_once(parsers):
    missing, twice = [], []
    for _, name, parser in parsers:
        formatter = parser._get_formatter()
        for action in _options(parser):
            if action.default is None or action.default is argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)
            mentions = len(re.findall(r"\bdefault\b", text, flags=re.IGNORECASE))
            if not mentions:
                missing.append((name, action.option_strings[0], action.default))
            if mentions > 1:
                twice.append((name, action.option_strings[0], text))
    assert not missing, f"options whose --help does not show their default: {missing}"
    assert not twice, f"options whose --help states the default twice: {twice}"


def test_help_output_shows_default_values(capsys):
    from flamenerf.synthetic import generator

    with pytest.raises(SystemExit):
        generator.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"training frames (>= 2) (default: {generator.DEFAULTS['frames']})" in text
    assert "no progress bar (default: off)" in text


def test_a_flag_name_means_one_thing(parsers):
    uses: dict[str, set[tuple[str, str]]] = {}
    for command, _, parser in parsers:
        for action in _options(parser):
            for flag in action.option_strings:
                if flag.startswith("--"):
                    uses.setdefault(flag, set()).add((command, _kind(action)))
    for flag, found in uses.items():
        commands = {command for command, _ in found}
        if len(commands) > 1:
            assert flag in SHARED_FLAGS, f"{flag} is used by {sorted(commands)}: declare it"
            kinds = {kind for _, kind in found}
            assert kinds == {SHARED_FLAGS[flag][1]}, (flag, SHARED_FLAGS[flag], sorted(found))
    for flag in SHARED_FLAGS:
        assert flag in uses, f"{flag} is declared but no command uses it"
    assert "--frames" not in uses, sorted(uses["--frames"])
    for flag, (command, _) in FRAME_FLAGS.items():
        assert {c for c, _ in uses.get(flag, ())} == {command}, (flag, uses.get(flag))


@pytest.mark.parametrize(
    "help_text, default, expected",
    [
        ("frames", 30, "frames (default: 30)"),
        ("weight", 0.5, "weight (default: 0.5)"),
        ("nets", ["alex", "vgg"], "nets (default: alex vgg)"),
        ("files", [], "files (default: none)"),
        ("50%% of it", "x%y", "50% of it (default: x%y)"),
        ("frames (default 30)", 30, "frames (default 30)"),
        ("as given; Default: the capture's", 4, "as given; Default: the capture's"),
        ("defaults.gin or a file", [], "defaults.gin or a file (default: none)"),
        ("a folder", None, "a folder"),
    ],
)
def test_formatter_appends_the_default_unless_stated(help_text, default, expected):
    parser = argparse.ArgumentParser(formatter_class=help_format.HelpFormatter)
    action = parser.add_argument("--x", default=default, help=help_text)
    assert parser._get_formatter()._expand_help(action) == expected


def test_formatter_switches_read_off():
    parser = argparse.ArgumentParser(formatter_class=help_format.HelpFormatter)
    action = parser.add_argument("--quiet", action="store_true", help="no bar")
    assert parser._get_formatter()._expand_help(action) == "no bar (default: off)"
    assert "(default: off)" in parser.format_help()
