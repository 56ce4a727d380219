# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The training-curves command line: its output file and its one-line errors."""

import pytest
from metrics_util import write_metrics

from flamenerf import plots


def test_cli_writes_curves_png(tmp_path, capsys):
    write_metrics(tmp_path / "metrics.jsonl")
    assert plots.main(["--base_folder", str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_cli_many_experiments_and_out(tmp_path, capsys):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        write_metrics(folder / "metrics.jsonl")
    assert plots.main(["--base_folder", *map(str, folders)]) == 0
    assert all((folder / "curves.png").stat().st_size > 0 for folder in folders)
    assert capsys.readouterr().out.split() == [str(f / "curves.png") for f in folders]
    out = tmp_path / "one.png"
    assert plots.main(["--base_folder", str(folders[0]), "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    # --out with several experiments: refused in one line, nothing written.
    assert plots.main(["--base_folder", *map(str, folders), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and err.count("\n") == 1 and not (tmp_path / "x.png").exists()


def test_cli_positional_experiment_is_refused(tmp_path, capsys):
    write_metrics(tmp_path / "metrics.jsonl")
    with pytest.raises(SystemExit) as raised:
        plots.main([str(tmp_path)])
    assert raised.value.code == 2 and "--base_folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, message",
    [(None, "metrics file not found"), ("{oops\n", "line 1: not JSON"), ("", "no metrics")],
)
def test_bad_metrics_error_in_one_line(tmp_path, capsys, text, message):
    if text is not None:
        (tmp_path / "metrics.jsonl").write_text(text)
    assert plots.main(["--base_folder", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
