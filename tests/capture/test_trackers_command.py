# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`flamenerf.capture.trackers.command`: bad tracker files name the file and the field."""

import json

import numpy as np
import pytest
from capture_util import write_capture
from tracker_util import IDS, import_flame, save_npz

from flamenerf.capture.io import StepError


def test_bad_tracker_files_name_the_file_and_field(tmp_path):
    root = write_capture(tmp_path / "cap")
    arrays = dict(
        rotation=np.zeros((4, 3)),
        translation=np.zeros((4, 3)),
        neck_pose=np.zeros((4, 3)),
        jaw_pose=np.zeros((4, 3)),
        eyes_pose=np.zeros((4, 6)),
        shape=np.zeros(5),
        expr=np.zeros((4, 6)),
        timestep_id=np.array(IDS),
    )
    nan = {**arrays, "expr": np.full((4, 6), np.nan)}
    save_npz(tmp_path / "nan.npz", **nan)
    with pytest.raises(StepError, match=r"nan.npz: field 'expr': expected finite numbers"):
        import_flame(root, "vhap", tmp_path / "nan.npz")
    save_npz(tmp_path / "shape.npz", **{**arrays, "eyes_pose": np.zeros((4, 3))})
    with pytest.raises(StepError, match=r"shape.npz: field 'eyes_pose': expected shape \(N, 6\)"):
        import_flame(root, "vhap", tmp_path / "shape.npz")
    with pytest.raises(StepError, match="missing.npz: tracker output not found"):
        import_flame(root, "vhap", tmp_path / "missing.npz")
    (tmp_path / "flame_params.json").write_text(
        json.dumps({"shape_params": [0.0], "intrinsics": [1, 1, 0.5, 0.5], "frames": []})
    )
    with pytest.raises(StepError, match="negative first value"):
        import_flame(root, "imavatar", tmp_path / "flame_params.json")
