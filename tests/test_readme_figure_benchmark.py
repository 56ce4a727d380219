# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/readme_figure.py: the README picture's layout from an eval folder written by hand
(each tile lands where it should, pixel for pixel), the frame choice and the errors."""

import numpy as np
import pytest
from benchmark_util import clean_gin, load  # noqa: F401 (autouse fixture)
from PIL import Image

readme_figure = load("readme_figure")
KINDS = ("target", "prediction", "error", "depth")


def _eval_folder(root, ids, size=8):
    folder = root / "eval" / "step_20"
    folder.mkdir(parents=True)
    (root / "eval" / "step_3").mkdir()  # an older evaluation: not the latest
    colours = {}
    for n, frame_id in enumerate(ids):
        for k, kind in enumerate(KINDS):
            colour = (10 * n, 20 * k, 200)
            colours[frame_id, kind] = colour
            Image.new("RGB", (size, size), colour).save(folder / f"{frame_id}_{kind}.png")
    return colours


def test_tiles_land_in_their_row_and_column(tmp_path):
    ids = ["0004", "0012", "vrig_0008"]
    colours = _eval_folder(tmp_path, ids)
    out = tmp_path / "figure.png"
    readme_figure.main(["--base_folder", str(tmp_path), "--out", str(out), "--zoom", "3"])
    image = np.asarray(Image.open(out))
    tile = 8 * 3
    assert image.shape == (
        readme_figure.TITLE_HEIGHT + 4 * tile,
        readme_figure.LABEL_WIDTH + 3 * tile,
        3,
    )
    for column, frame_id in enumerate(ids):
        for row, kind in enumerate(KINDS):
            top = readme_figure.TITLE_HEIGHT + row * tile
            left = readme_figure.LABEL_WIDTH + column * tile
            block = image[top : top + tile, left : left + tile]
            assert (block == colours[frame_id, kind]).all(), (frame_id, kind)


def test_spread_and_chosen_ids(tmp_path):
    ids = [f"{i:04d}" for i in range(10)]
    assert readme_figure.spread(ids, 4) == ["0000", "0003", "0006", "0009"]
    assert readme_figure.spread(ids[:2], 4) == ids[:2]
    _eval_folder(tmp_path, ids[:3])
    folder = readme_figure.latest_eval(tmp_path)
    assert folder.name == "step_20" and readme_figure.evaluated_ids(folder) == ids[:3]


def test_missing_folder_or_image_is_a_clear_exit(tmp_path):
    with pytest.raises(SystemExit, match="no eval/step_N folder"):
        readme_figure.latest_eval(tmp_path)
    _eval_folder(tmp_path, ["0001"])
    (tmp_path / "eval" / "step_20" / "0001_depth.png").unlink()
    with pytest.raises(SystemExit, match="0001_depth.png: missing"):
        readme_figure.main(["--base_folder", str(tmp_path), "--out", str(tmp_path / "f.png")])
