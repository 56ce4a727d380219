# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`import-flame --from deca`: DECA codes whose weak perspective matches the capture's cameras."""

import numpy as np
import pytest
from capture_util import write_capture
from scipy.spatial.transform import Rotation
from tracker_util import (
    IDS,
    F,
    assert_capture_vertices,
    assert_params,
    head_in_cameras,
    import_flame,
    orbit_cameras,
    random_similarity,
    still_head_truth,
    unposed_roots,
    world_vertices,
    write_cameras,
)

from flamenerf.capture.io import StepError
from flamenerf.geometry import flame


def test_deca_weak_perspective_is_placed_in_the_capture_cameras(tmp_path):
    rng = np.random.default_rng(10)
    root = write_capture(tmp_path / "cap")
    cameras = orbit_cameras(rng)
    write_cameras(root, cameras)
    model = flame.load_model(root / "flame_model.npz")
    truth_to_world = random_similarity(rng)
    truth = still_head_truth(rng, model, truth_to_world, neck_and_eyes=False)
    folder = tmp_path / "deca"
    folder.mkdir()
    half = 112.0
    heads = head_in_cameras(model, truth, truth_to_world, cameras)
    roots = unposed_roots(model, truth)
    for k, (frame_id, p, camera, (orientation, position), root_joint) in enumerate(
        zip(IDS, truth, cameras, heads, roots, strict=True)
    ):
        # A crop similarity image -> crop (scale, rotation, offset), as DECA's TestData's tform.
        angle, crop_scale = rng.uniform(-0.3, 0.3), rng.uniform(5.0, 20.0)
        tform = np.eye(3)
        tform[:2, :2] = crop_scale * np.array(
            [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        )
        tform[:2, 2] = rng.uniform(-50, 50, size=2)
        # Weak perspective matching the pinhole camera at the root joint's depth.
        pixels_per_metre = camera.focal_length / position[2]
        s = pixels_per_metre * crop_scale / half
        crop = tform @ np.append(
            camera.project(camera.position + camera.orientation.T @ position), 1.0
        )
        tx = (crop[0] / half - 1) / s - root_joint[0]
        ty = (1 - crop[1] / half) / s - root_joint[1]
        spin = Rotation.from_rotvec([0.0, 0.0, -angle]).as_matrix()  # crop -> image turns by -angle
        deca_rotation = F @ spin.T @ orientation
        codes = {
            "shape": p.shape[None],
            "exp": p.expression[None],
            "pose": np.concatenate([Rotation.from_matrix(deca_rotation).as_rotvec(), p.jaw_pose])[
                None
            ],
            "cam": np.array([[s, tx, ty]]),
            "tform": tform,
        }
        if k == 0:  # EMOCA's save_codes layout: one .npy per code in a folder per frame
            (folder / frame_id).mkdir()
            for key, value in codes.items():
                np.save(folder / frame_id / f"{key}.npy", value)
        else:
            np.savez(folder / f"{frame_id}.npz", **codes)

    assert import_flame(root, "deca", folder) == 0
    assert_params(root, truth, fields=("shape", "expression", "jaw_pose"))
    assert_capture_vertices(root, world_vertices(model, truth, truth_to_world))

    bare = write_capture(tmp_path / "bare")
    for path in (bare / "camera").iterdir():
        path.unlink()
    with pytest.raises(StepError, match="run the cameras step first"):
        import_flame(bare, "deca", folder)
