# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Capture reading and validation on captures written by hand from the spec."""

import json
import subprocess
import sys

import numpy as np
import pytest
from capture_util import tiny_flame_arrays, tree_digest, write_capture, write_json
from PIL import Image

from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import validate


@pytest.fixture
def capture_dir(tmp_path):
    return write_capture(tmp_path / "cap", masks=True)


def test_hand_written_capture_loads(capture_dir):
    before = tree_digest(capture_dir)
    cap = capture_lib.load_capture(capture_dir)
    assert cap.train_ids == ["t00", "t01", "t02"] and cap.val_ids == ["v00"]
    assert cap.frames["v00"].warp_id == 2
    # Cameras in the normalised frame: (position - center) * scale.
    np.testing.assert_allclose(cap.cameras["t01"].position, [0.02, 0.0, 0.8])
    image = cap.image("t01")
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert image[0, 3, 0] == 61 and image[2, 0, 1] == 60 and image[0, 0, 2] == 7
    # Condition vector: expression zero-padded to num_expression (3), then the jaw pose.
    np.testing.assert_allclose(cap.condition("t01"), [0.1, -0.2, 0.0, 0.05, 0.0, 0.0])
    np.testing.assert_allclose(cap.condition("t01", jaw=False), [0.1, -0.2, 0.0])
    assert cap.mask("t00").sum() == 4 * 4
    assert tree_digest(capture_dir) == before  # never modified


def test_vertices_are_normalised_flame_vertices(capture_dir):
    cap = capture_lib.load_capture(capture_dir)
    raw = tiny_flame_arrays()
    # Frame t00: shape [0.5], expression [0, -0.2] (columns 2, 3 of 6); jaw 0.
    expected = raw["v_template"] + raw["shapedirs"] @ np.array([0.5, 0.0, 0.0, -0.2, 0.0, 0.0])
    np.testing.assert_allclose(cap.vertices("t00"), (expected - [0, 0, 0.1]) * 2.0, atol=1e-6)


def test_to_world_placement(tmp_path):
    root = write_capture(tmp_path / "cap")
    scene = json.loads((root / "scene.json").read_text())
    rotation = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # 90 degrees about z
    scene["flame"]["to_world"] = {"scale": 2.0, "rotation": rotation, "translation": [1, 2, 3]}
    write_json(root / "scene.json", scene)
    cap = capture_lib.load_capture(root)
    x = np.array([[0.1, 0.0, 0.0]])
    # 2 * R x + t = (0, 0.2, 0) + (1, 2, 3); then normalised: (p - (0, 0, 0.1)) * 2.
    np.testing.assert_allclose(cap.scene.flame_to_scene(x), [[2.0, 4.4, 5.8]], atol=1e-12)


def test_scale_box_averages_missing_images(tmp_path):
    on_disk = capture_lib.load_capture(write_capture(tmp_path / "a", scaled=(2,)), scale=2)
    in_memory = capture_lib.load_capture(write_capture(tmp_path / "b"), scale=2)
    assert in_memory.image_size("t00") == (4, 3)
    assert in_memory.cameras["t00"].focal_length == 5.0
    np.testing.assert_array_equal(in_memory.image("t01"), on_disk.image("t01"))


def test_rasterised_mask_when_no_mask_folder(capture_dir, tmp_path):
    root = write_capture(tmp_path / "nomask", width=32, height=24)
    cap = capture_lib.load_capture(root)
    mask = cap.mask("t00")
    assert mask.shape == (24, 32) and mask.dtype == bool
    # The octahedron (radius 0.1 m at 0.5 m, f = 10 px at 8 px wide... here f = 10 with 32 px)
    # projects around the image centre; its centre pixel is inside, corners are outside.
    assert mask[12, 16] and not mask[0, 0] and not mask[-1, -1]


def corrupt(root, kind):
    if kind == "missing camera":
        (root / "camera" / "t01.json").unlink()
    elif kind == "id not in metadata":
        meta = json.loads((root / "metadata.json").read_text())
        del meta["v00"]
        write_json(root / "metadata.json", meta)
    elif kind == "count":
        data = json.loads((root / "dataset.json").read_text())
        data["count"] = 7
        write_json(root / "dataset.json", data)
    elif kind == "nan flame":
        (root / "flame" / "t02.json").write_text('{"expression": [NaN]}')
    elif kind == "too many expressions":
        write_json(root / "flame" / "t02.json", {"expression": [0.1] * 4})
    elif kind == "wrong image size":
        Image.fromarray(np.zeros((5, 8, 3), np.uint8)).save(root / "rgb" / "1x" / "t00.png")
    elif kind == "16-bit image":
        Image.fromarray(np.zeros((6, 8), np.uint16)).save(root / "rgb" / "1x" / "t00.png")
    elif kind == "palette image":
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).convert("P").save(
            root / "rgb" / "1x" / "t00.png"
        )
    elif kind == "missing model":
        (root / "flame_model.npz").unlink()
    elif kind == "bad camera":
        cam = json.loads((root / "camera" / "t00.json").read_text())
        cam["focal_length"] = -1
        write_json(root / "camera" / "t00.json", cam)
    elif kind == "duplicate warp":
        meta = json.loads((root / "metadata.json").read_text())
        meta["t01"]["warp_id"] = 0
        write_json(root / "metadata.json", meta)
    elif kind == "mask size":
        Image.fromarray(np.zeros((6, 9), np.uint8)).save(root / "mask" / "1x" / "t01.png")


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing camera", r"camera/t01.json: file not found"),
        ("id not in metadata", r"metadata.json: no entry \(object\) for id 'v00'"),
        ("count", r"dataset.json: field 'count' is 7; len\(ids\) is 4"),
        ("nan flame", r"flame/t02.json: field 'expression' has non-finite values"),
        ("too many expressions", r"flame/t02.json: field 'expression' has 4 coefficients"),
        ("wrong image size", r"rgb/1x/t00.png: image is 8x5; expected 8x6"),
        ("16-bit image", r"rgb/1x/t00.png: image has mode 'I;16'"),
        ("palette image", r"rgb/1x/t00.png: image has mode 'P'"),
        ("missing model", r"scene.json: field 'flame.model' names .*flame_model.npz"),
        ("bad camera", r"camera/t00.json.*focal_length"),
        ("duplicate warp", r"metadata.json: training frames' 'warp_id' must be distinct"),
        ("mask size", r"mask/1x/t01.png: mask is 9x6; expected 8x6"),
    ],
)
def test_broken_captures_name_file_and_field(capture_dir, kind, message):
    corrupt(capture_dir, kind)
    with pytest.raises(capture_lib.CaptureError, match=message):
        capture_lib.load_capture(capture_dir)


def test_every_problem_is_reported(capture_dir):
    corrupt(capture_dir, "missing camera")
    corrupt(capture_dir, "nan flame")
    corrupt(capture_dir, "wrong image size")
    with pytest.raises(capture_lib.CaptureError) as info:
        capture_lib.load_capture(capture_dir)
    assert len(info.value.problems) == 3


def test_validate_cli(capture_dir, capsys):
    assert validate.main([str(capture_dir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "OK, 3 train + 1 val frames, 8x6 at 1x" in out[0]
    corrupt(capture_dir, "missing camera")
    corrupt(capture_dir, "nan flame")
    assert validate.main([str(capture_dir)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def test_validate_cli_subprocess_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "flamenerf.datasets.validate", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"{tmp_path / 'nothing'}: capture folder not found"
