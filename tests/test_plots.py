# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Training curves from a hand-written metrics.jsonl."""

import json

import numpy as np
import pytest
from PIL import Image

from flamenerf import plots


def write_metrics(path):
    records = [
        {"step": 10, "wall_s": 1.0, "split": "train", "loss": 0.2, "psnr": 12.0, "mse_fine": 0.1},
        {"step": 20, "wall_s": 2.0, "split": "train", "loss": 0.1, "psnr": 14.0, "mse_fine": 0.05},
        {"step": 20, "wall_s": 2.5, "split": "val", "psnr": 13.0, "psnr_face": 15.0},
        {"step": 30, "wall_s": 3.0, "split": "train", "loss": 0.05, "psnr": 16.0, "lr": 1e-3},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")


def test_read_metrics_groups_by_split_and_key(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl")
    series = plots.read_metrics(tmp_path / "metrics.jsonl")
    assert series["train"]["psnr"] == [(10, 12.0), (20, 14.0), (30, 16.0)]
    assert series["val"]["psnr_face"] == [(20, 15.0)]
    assert "wall_s" not in series["train"]


def test_plot_file_is_created(tmp_path):
    write_metrics(tmp_path / "metrics.jsonl")
    out = plots.plot_training_curves(tmp_path / "metrics.jsonl", tmp_path / "plots" / "c.png")
    assert out.stat().st_size > 0
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.std() > 0  # something was drawn


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
