# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The flags several command lines share, declared once: same name, help, type and default.

`add_base_folder` (`--base_folder EXP`), `add_checkpoint` (`--checkpoint STEP`) and
`add_quiet` (`--quiet`) are called by every command and benchmark that takes them, so that a
flag reads and parses the same everywhere (`tests/test_help_format.py` checks that a shared
flag takes one kind of value; `help_format.HelpFormatter` appends the defaults).

Experiment folders come in two kinds, as each command accepts them:

- local only (`local=True`: `export`, and the benchmarks that read the folder with
  pathlib): the type is `paths.local_path_argument`, so a URL is an argparse error naming the
  flag (exit 2) and never a local folder named `gs:`; the value is a `pathlib.Path`.
- local or gs:// (`train`, `eval`, `render`, `plots`): the value stays the string typed.
  `Experiment.create`/`restore` (through `paths.as_path` and `experiment_folder`) check it and
  a bad one is the command's own one-line `error: ...` (exit 2); `eval` and `plots` go on with
  their other folders. Checking it with `as_path` as the argparse type instead would print
  argparse's usage and stop at the first bad folder: a change of behaviour, so it is not done.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from flamenerf.io import paths


class _AddsArguments(Protocol):
    """A parser, a subparser or an argument group (a mutually exclusive one too)."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action: ...


def base_folder_help(*, local: bool = False, many: bool = False, created: bool = False) -> str:
    """The help of `--base_folder`: what it is, and where it may be."""
    what = "the experiment folder(s)" if many else "the experiment folder"
    if created:
        what += " (created, or resumed when it has checkpoints)"
    if local:
        where = "local folders only" if many else "a local folder only"
        where += " (copy a bucket's experiment down first)"
    else:
        where = "local paths or gs://BUCKET/PATH" if many else "a local path or gs://BUCKET/PATH"
    globs = "; shell globs work" if many else ""
    return f"{what}: {where}{globs}"


def add_base_folder(
    parser: _AddsArguments,
    *,
    local: bool = False,
    many: bool = False,
    created: bool = False,
    required: bool = True,
    checked_later: bool = False,
    default: Any = None,
) -> argparse.Action:
    """Adds `--base_folder EXP`, the experiment folder a command reads (or writes).

    Args:
      parser: where to add it (a parser, subparser or argument group).
      local: local folders only (value: `pathlib.Path`; a URL is an argparse error, exit 2);
        else a local path or a gs:// URL, kept as the string typed (module docstring).
      many: one or more folders (`nargs="+"`, value: a list).
      created: the command creates the folder (train).
      required: argparse requires the flag.
      checked_later: the command requires the flag itself after parsing (flags given before
        or after a subcommand, `render`): argparse does not, and the help says "(required)".
      default: the value when absent (`argparse.SUPPRESS` in a subparser whose parent holds
        the flag too).
    """
    text = base_folder_help(local=local, many=many, created=created)
    kwargs: dict[str, Any] = {"metavar": "EXP", "default": default}
    if local:
        kwargs["type"] = paths.local_path_argument
    if many:
        kwargs["nargs"] = "+"
    if checked_later:
        text += " (required)"
    else:
        kwargs["required"] = required
    return parser.add_argument("--base_folder", help=text, **kwargs)


def add_checkpoint(parser: _AddsArguments, default: Any = None) -> argparse.Action:
    """Adds `--checkpoint STEP` (an int; absent: the latest checkpoint, `Experiment.restore`)."""
    return parser.add_argument(
        "--checkpoint",
        type=int,
        default=default,
        metavar="STEP",
        help="checkpoint step to restore (default: the latest)",
    )


def add_quiet(parser: _AddsArguments, help_text: str = "no progress bars") -> argparse.Action:
    """Adds `--quiet`, a switch (off by default) that hides the progress display."""
    return parser.add_argument("--quiet", action="store_true", help=help_text)
