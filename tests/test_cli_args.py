# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.cli_args: --base_folder, --checkpoint and --quiet declared once, parsed as each
command parsed them before; every command and benchmark that takes them uses the helpers."""

import argparse
import importlib
from pathlib import Path

import pytest
from benchmark_util import load

from flamenerf import cli_args, help_format
from flamenerf.io.paths import local_path_argument

# What each command's --base_folder accepts: "local" (a pathlib.Path, URLs refused by argparse)
# or "remote" (the string typed, checked by Experiment.create/restore), and one or many.
COMMANDS = {
    "flamenerf.train": ("remote", False),
    "flamenerf.eval": ("remote", True),
    "flamenerf.render": ("remote", False),
    "flamenerf.plots": ("remote", True),
    "flamenerf.export.__main__": ("local", False),
}
BENCHMARKS = {
    "code_dependence": ("local", True),
    "region_error": ("local", False),
    "readme_figure": ("local", False),
    "render_speed": ("local", False),
    "export_fidelity": ("remote", False),
    "export_size": ("remote", False),
}
# Commands with the shared --checkpoint and --quiet (render's subparsers repeat them).
CHECKPOINT = ["flamenerf.eval", "flamenerf.render", "flamenerf.export.__main__"]
CHECKPOINT_BENCHMARKS = ["export_fidelity", "export_size"]
QUIET = ["flamenerf.export.__main__", "flamenerf.synthetic.generator", "flamenerf.capture.fit"]


def _parser(formatter=help_format.HelpFormatter) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="cmd", formatter_class=formatter)


def _refused(parser, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


class _Parsed(Exception):
    """Raised instead of parsing: carries the parser a `main` built."""


def _built_parser(main, monkeypatch, argv=("--help",)) -> argparse.ArgumentParser:
    def stop(self, *args, **kwargs):
        raise _Parsed(self)

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", stop)
        with pytest.raises(_Parsed) as parsed:
            main(list(argv)) if argv is not None else main()
    return parsed.value.args[0]


def _command_parser(module_name, monkeypatch) -> argparse.ArgumentParser:
    module = importlib.import_module(module_name)
    if module_name == "flamenerf.capture.fit":  # a step of `capture`: its flags only
        parser = _parser()
        module.add_arguments(parser)
        return parser
    return _built_parser(module.main, monkeypatch)


def _benchmark_parser(name, monkeypatch) -> argparse.ArgumentParser:
    main = load(name).main
    takes_argv = main.__code__.co_argcount > 0
    return _built_parser(main, monkeypatch, ("--help",) if takes_argv else None)


def _action(parser, flag) -> argparse.Action:
    (action,) = [a for a in parser._actions if flag in a.option_strings]
    return action


# --- the helpers on a parser of their own ---------------------------------------------------


def test_remote_base_folder_keeps_the_string_typed():
    parser = _parser()
    cli_args.add_base_folder(parser)
    for text in ("exp", "gs://bucket/exp", "gs:/bucket/exp"):  # the command checks it later
        assert parser.parse_args(["--base_folder", text]).base_folder == text


def test_local_base_folder_is_a_path_and_refuses_urls(capsys):
    parser = _parser()
    cli_args.add_base_folder(parser, local=True)
    assert parser.parse_args(["--base_folder", "exp"]).base_folder == Path("exp")
    err = _refused(parser, ["--base_folder", "gs://bucket/exp"], capsys)
    assert "argument --base_folder: gs://bucket/exp: this command reads and writes local " in err
    assert "Traceback" not in err
    err = _refused(parser, ["--base_folder", "gs:/bucket/exp"], capsys)
    assert "argument --base_folder: gs:/bucket/exp: looks like a URL" in err


def test_many_base_folders_and_the_required_flag(capsys):
    parser = _parser()
    cli_args.add_base_folder(parser, many=True)
    assert parser.parse_args(["--base_folder", "a", "gs://b/c"]).base_folder == ["a", "gs://b/c"]
    err = _refused(parser, [], capsys)
    assert "the following arguments are required: --base_folder" in err


def test_base_folder_checked_later_is_optional_for_argparse_and_says_required():
    parser = _parser()
    cli_args.add_base_folder(parser, checked_later=True, default=argparse.SUPPRESS)
    assert "base_folder" not in vars(parser.parse_args([]))
    text = " ".join(parser.format_help().split())
    assert "--base_folder EXP the experiment folder: a local path or gs://BUCKET/PATH " in text
    assert "(required)" in text


def test_base_folder_in_a_mutually_exclusive_group(capsys):
    parser = _parser()
    group = parser.add_mutually_exclusive_group(required=True)
    cli_args.add_base_folder(group, local=True, required=False)
    group.add_argument("--gin_configs", nargs="+")
    assert parser.parse_args(["--base_folder", "e"]).base_folder == Path("e")
    err = _refused(parser, ["--base_folder", "e", "--gin_configs", "g"], capsys)
    assert "not allowed with argument" in err


def test_checkpoint_is_an_int_and_help_shows_its_default(capsys):
    parser = _parser()
    cli_args.add_checkpoint(parser)
    assert parser.parse_args([]).checkpoint is None
    assert parser.parse_args(["--checkpoint", "12"]).checkpoint == 12
    err = _refused(parser, ["--checkpoint", "latest"], capsys)
    assert "argument --checkpoint: invalid int value: 'latest'" in err
    text = " ".join(parser.format_help().split())
    assert "--checkpoint STEP checkpoint step to restore (default: the latest)" in text
    assert text.count("default") == 1


def test_quiet_is_an_off_switch_shown_as_such():
    parser = _parser()
    cli_args.add_quiet(parser)
    assert parser.parse_args([]).quiet is False
    assert parser.parse_args(["--quiet"]).quiet is True
    assert "--quiet no progress bars (default: off)" in " ".join(parser.format_help().split())


# --- every command and benchmark ------------------------------------------------------------


@pytest.mark.parametrize("module_name", sorted(COMMANDS))
def test_every_command_declares_base_folder_through_the_helper(module_name, monkeypatch):
    kind, many = COMMANDS[module_name]
    parser = _command_parser(module_name, monkeypatch)
    action = _action(parser, "--base_folder")
    expected = cli_args.base_folder_help(
        local=kind == "local", many=many, created=module_name == "flamenerf.train"
    )
    assert action.help.startswith(expected), action.help
    assert action.metavar == "EXP" and action.nargs == ("+" if many else None)
    assert action.type is (local_path_argument if kind == "local" else None)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_declares_base_folder_through_the_helper(name, monkeypatch):
    kind, many = BENCHMARKS[name]
    action = _action(_benchmark_parser(name, monkeypatch), "--base_folder")
    assert action.help == cli_args.base_folder_help(local=kind == "local", many=many)
    assert action.type is (local_path_argument if kind == "local" else None)


def test_checkpoint_and_quiet_are_the_helpers_everywhere(monkeypatch):
    checkpoints = [_command_parser(m, monkeypatch) for m in CHECKPOINT]
    checkpoints += [_benchmark_parser(n, monkeypatch) for n in CHECKPOINT_BENCHMARKS]
    for parser in checkpoints:
        action = _action(parser, "--checkpoint")
        assert (action.type, action.metavar, action.default) == (int, "STEP", None)
        assert action.help == "checkpoint step to restore (default: the latest)"
    for module_name in QUIET:
        action = _action(_command_parser(module_name, monkeypatch), "--quiet")
        assert isinstance(action, argparse._StoreTrueAction) and action.default is False
        assert action.help.startswith("no progress bar")


def test_commands_parse_their_folders_as_before(capsys):
    from flamenerf import eval as eval_cli
    from flamenerf import render, train
    from flamenerf.export import __main__ as export_cli

    assert train.parse_args(["--base_folder", "gs://b/exp"]).base_folder == "gs://b/exp"
    args = eval_cli.parse_args(["--base_folder", "a", "gs://b/c", "--checkpoint", "3"])
    assert (args.base_folder, args.checkpoint) == (["a", "gs://b/c"], 3)
    before = render.parse_args(["--base_folder", "x", "path", "--checkpoint", "4"])
    after = render.parse_args(["path", "--base_folder", "x"])
    assert (before.base_folder, before.checkpoint, after.base_folder) == ("x", 4, "x")
    with pytest.raises(SystemExit) as exit_info:
        render.parse_args(["path"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --base_folder" in capsys.readouterr().err
    args = export_cli.build_parser().parse_args(["--base_folder", "e", "--out", "o", "--quiet"])
    assert (args.base_folder, args.checkpoint, args.quiet) == (Path("e"), None, True)
    with pytest.raises(SystemExit) as exit_info:
        export_cli.build_parser().parse_args(["--base_folder", "gs://b/e", "--out", "o"])
    assert exit_info.value.code == 2
    assert "argument --base_folder: gs://b/e: this command reads" in capsys.readouterr().err
