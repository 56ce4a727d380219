# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The capture writers: atomic JSON, the train/validation split, scene.json merging."""

import json

import numpy as np
import pytest

from flamenerf.capture import io


def test_write_json_is_atomic_and_converts_numpy(tmp_path):
    path = tmp_path / "a" / "b.json"
    io.write_json(path, {"x": np.arange(3), "y": np.float32(0.5), "z": (1, 2)})
    assert json.loads(path.read_text()) == {"x": [0, 1, 2], "y": 0.5, "z": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temporary left over

    class Boom:
        pass

    with pytest.raises(TypeError):
        io.write_json(path, {"x": Boom()})
    assert json.loads(path.read_text())["x"] == [0, 1, 2]  # the old file survives a failure
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_split_gives_validation_frames_the_nearest_training_code(tmp_path):
    train = ["000", "001", "003", "004", "006"]
    val = ["002", "005"]
    io.write_split(tmp_path, train, val)
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    assert dataset == {
        "count": 7,
        "num_exemplars": 5,
        "ids": train + val,
        "train_ids": train,
        "val_ids": val,
    }
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert [metadata[i]["warp_id"] for i in train] == [0, 1, 2, 3, 4]
    # 002 sits between 001 and 003 (tie: the earlier); 005 between 004 and 006.
    assert metadata["002"] == {"warp_id": 1, "appearance_id": 1, "camera_id": 0}
    assert metadata["005"]["warp_id"] == 3
    assert io.read_split(tmp_path) == (train, val)


def test_split_refuses_no_training_frames(tmp_path):
    with pytest.raises(io.StepError, match="train_ids would be empty"):
        io.write_split(tmp_path, [], ["001"])


def test_update_scene_merges_the_flame_section(tmp_path):
    io.update_scene(tmp_path, center=[0, 0, 0], flame={"model": "m.npz", "num_expression": 10})
    scene = io.update_scene(tmp_path, scale=2.0, flame={"num_expression": 50})
    assert scene == {
        "center": [0, 0, 0],
        "scale": 2.0,
        "flame": {"model": "m.npz", "num_expression": 50},
    }
    assert json.loads((tmp_path / "scene.json").read_text()) == scene


def test_flame_json_checks_lengths_and_finiteness():
    out = io.flame_json(expression=np.zeros(4), jaw_pose=[0.1, 0, 0])
    assert out == {"expression": [0.0] * 4, "jaw_pose": [0.1, 0.0, 0.0]}
    with pytest.raises(io.StepError, match="'eye_pose': expected 6 values, got 3"):
        io.flame_json(eye_pose=np.zeros(3))
    with pytest.raises(io.StepError, match="'shape': non-finite"):
        io.flame_json(shape=[0.0, np.nan])


def test_read_json_names_the_file(tmp_path):
    with pytest.raises(io.StepError, match="missing.json: file not found"):
        io.read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(io.StepError, match="bad.json: not valid JSON"):
        io.read_json(bad)


def test_outputs_stay_inside_the_capture(tmp_path):
    io.check_output_inside(tmp_path, tmp_path / "rgb" / "1x" / "a.png")
    with pytest.raises(io.StepError, match="outside the capture folder"):
        io.check_output_inside(tmp_path / "cap", tmp_path / "elsewhere.json")


def test_read_split_checks_ids_like_the_loader(tmp_path):
    with pytest.raises(io.StepError, match="dataset.json: file not found"):
        io.read_split(tmp_path)
    (tmp_path / "dataset.json").write_text(
        json.dumps(
            {"count": 1, "num_exemplars": 1, "ids": ["../x"], "train_ids": ["../x"], "val_ids": []}
        )
    )
    with pytest.raises(io.StepError, match="id containing '/'"):
        io.read_split(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"train_ids": "ab", "val_ids": []}))
    with pytest.raises(io.StepError, match="dataset.json"):
        io.read_split(tmp_path)


def test_update_scene_refuses_a_scene_that_is_not_an_object(tmp_path):
    (tmp_path / "scene.json").write_text("[]")
    with pytest.raises(io.StepError, match="scene.json: expected a JSON object, found list"):
        io.update_scene(tmp_path, scale=1.0)
