# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf COMMAND [ARGS ...]` (installed as `flamenerf COMMAND ...`).

One entry point for every command line; `python -m flamenerf` or `--help` lists them, and
`python -m flamenerf COMMAND --help` describes one. Each command is also its own module
(`python -m flamenerf.train ...`), with the same arguments and exit codes.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from flamenerf import errors

# Command -> (the module whose `main(argv) -> int` runs it, a one-line description).
COMMANDS: dict[str, tuple[str, str]] = {
    "train": (
        "flamenerf.train",
        "train an experiment (EXP/checkpoints, metrics.jsonl, TensorBoard); resumes",
    ),
    "eval": (
        "flamenerf.eval",
        "evaluate experiments on their validation frames (metrics.json, PNGs, one table)",
    ),
    "render": (
        "flamenerf.render",
        "render a trained experiment: novel views, expressions, reanimation (frames, video)",
    ),
    "plots": ("flamenerf.plots", "plot an experiment's training curves (EXP/curves.png)"),
    "capture": (
        "flamenerf.capture.__main__",
        "turn a phone video, or a face tracker's output, into a checked capture",
    ),
    "synthetic": (
        "flamenerf.synthetic.generator",
        "write a synthetic capture (the procedural head filmed by a handheld phone)",
    ),
    "validate": ("flamenerf.datasets.validate", "check a capture folder as training loads it"),
    "head": (
        "flamenerf.synthetic.head.__main__",
        "write the procedural FLAME-format head (.npz), optionally with a picture of it",
    ),
    "export": (
        "flamenerf.export.__main__",
        "bake a trained experiment into a glTF avatar with FLAME controls and a browser viewer",
    ),
}


def usage() -> str:
    """The command list."""
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: python -m flamenerf COMMAND [ARGS ...]   (installed: flamenerf COMMAND ...)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    lines += [
        "",
        "`python -m flamenerf COMMAND --help` describes a command's arguments; each command",
        "is also a module of its own (`python -m flamenerf.eval ...` is `eval`).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `COMMAND ARGS...` (default: sys.argv[1:]) and returns its exit status.

    No command: the list on stderr, 2. `-h`/`--help`: the list, 0. An unknown command: an
    error and the list on stderr, 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return errors.EXIT_USER_ERROR
    if args[0] in ("-h", "--help"):
        print(usage())
        return errors.EXIT_OK
    command, *rest = args
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'\n\n{usage()}", file=sys.stderr)
        return errors.EXIT_USER_ERROR
    module = importlib.import_module(COMMANDS[command][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
