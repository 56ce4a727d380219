# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The training-curves command line: its output file and its one-line errors."""

import pytest
from test_figures import write_metrics

from flamenerf import plots


def test_cli_writes_curves_png(tmp_path, capsys):
    write_metrics(tmp_path / "metrics.jsonl")
    assert plots.main([str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.parametrize(
    "text, message",
    [(None, "metrics file not found"), ("{oops\n", "line 1: not JSON"), ("", "no metrics")],
)
def test_bad_metrics_error_in_one_line(tmp_path, capsys, text, message):
    if text is not None:
        (tmp_path / "metrics.jsonl").write_text(text)
    assert plots.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
