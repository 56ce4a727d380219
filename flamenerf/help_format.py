# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The `--help` format of every command line: each option's default is shown once.

`HelpFormatter` appends "(default: VALUE)" to the help of every option whose default is not
None, unless the help text already states its default (it has the word "default"); a switch
(`store_true`) that is off by default gets "(default: off)". `RawDescriptionHelpFormatter`
does the same and keeps the description's own line breaks. Pass either as `formatter_class`
to `argparse.ArgumentParser` and to each `add_parser` (subparsers do not inherit it).
"""

from __future__ import annotations

import argparse
import re
from typing import Any


def default_text(value: Any) -> str:
    """How a default value reads in --help: `30`, `0.5`, `alex vgg`, `off`, `on`."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return " ".join(default_text(v) for v in value) if value else "none"
    return str(value)


_MENTIONS_DEFAULT = re.compile(r"\bdefault\b", re.IGNORECASE)  # "defaults.gin" does not


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with every option's default stated exactly once."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            default is None
            or default is argparse.SUPPRESS
            or isinstance(action, argparse._HelpAction | argparse._VersionAction)
            or _MENTIONS_DEFAULT.search(text)
        ):
            return text
        shown = default_text(default).replace("%", "%%")
        return f"{text} (default: {shown})" if text else f"(default: {shown})"


class RawDescriptionHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """`HelpFormatter` that keeps the description's line breaks (docstring descriptions)."""
