# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Writes tiny captures by hand, straight from the spec (no flamenerf code involved)."""

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

# A camera on +z looking at the origin, y down (OpenCV): rows are the camera axes in world.
LOOK_BACK = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]


def tiny_flame_arrays(num_shape=2, num_expression=4):
    """An octahedron of radius 0.1 m in the FLAME layout, with a jaw on its lower half."""
    v = 0.1 * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    f = np.array(
        [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]],
        dtype=np.int32,
    )
    rng = np.random.default_rng(0)
    weights = np.zeros((6, 5))
    weights[:, 1] = 1.0
    weights[3] = [0, 0, 1, 0, 0]  # the lowest vertex follows the jaw
    j_reg = np.full((5, 6), 1 / 6)
    return {
        "v_template": v,
        "shapedirs": rng.normal(scale=0.005, size=(6, 3, num_shape + num_expression)),
        "posedirs": np.zeros((6, 3, 36)),
        "J_regressor": j_reg,
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.uint32),
        "weights": weights,
        "f": f,
        "num_shape": np.array(num_shape),
        "num_expression": np.array(num_expression),
    }


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def write_capture(
    root: Path, num_train=3, num_val=1, width=8, height=6, masks=False, num_expression=3, scaled=()
):
    """A capture in the spec's layout: cameras on +z, gradient images, FLAME params."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "flame_model.npz", **tiny_flame_arrays())
    train = [f"t{i:02d}" for i in range(num_train)]
    val = [f"v{i:02d}" for i in range(num_val)]
    ids = train + val
    write_json(
        root / "dataset.json",
        {
            "count": len(ids),
            "num_exemplars": num_train,
            "ids": ids,
            "train_ids": train,
            "val_ids": val,
        },
    )
    write_json(
        root / "metadata.json",
        {
            i: {
                "warp_id": min(k, num_train - 1),
                "appearance_id": min(k, num_train - 1),
                "camera_id": 0,
            }
            for k, i in enumerate(ids)
        },
    )
    write_json(
        root / "scene.json",
        {
            "center": [0.0, 0.0, 0.1],
            "scale": 2.0,
            "near": 0.2,
            "far": 2.0,
            "flame": {
                "model": "flame_model.npz",
                "to_world": {
                    "scale": 1.0,
                    "rotation": np.eye(3).tolist(),
                    "translation": [0.0, 0.0, 0.0],
                },
                "num_expression": num_expression,
            },
        },
    )
    for k, i in enumerate(ids):
        write_json(
            root / "camera" / f"{i}.json",
            {
                "orientation": LOOK_BACK,
                "position": [0.01 * k, 0.0, 0.5],
                "focal_length": 10.0,
                "principal_point": [width / 2, height / 2],
                "skew": 0.0,
                "pixel_aspect_ratio": 1.0,
                "radial_distortion": [0.0, 0.0, 0.0],
                "tangential_distortion": [0.0, 0.0],
                "image_size": [width, height],
            },
        )
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = np.arange(width)[None, :] * 20 + k
        image[..., 1] = np.arange(height)[:, None] * 30
        image[..., 2] = 7 * k
        (root / "rgb" / "1x").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "rgb" / "1x" / f"{i}.png")
        for s in scaled:
            (root / "rgb" / f"{s}x").mkdir(parents=True, exist_ok=True)
            small = image.reshape(height // s, s, width // s, s, 3).mean(axis=(1, 3))
            Image.fromarray(np.round(small).astype(np.uint8)).save(
                root / "rgb" / f"{s}x" / f"{i}.png"
            )
        if masks:
            mask = np.zeros((height, width), np.uint8)
            mask[1:-1, 2:-2] = 255
            (root / "mask" / "1x").mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(root / "mask" / "1x" / f"{i}.png")
        write_json(
            root / "flame" / f"{i}.json",
            {"shape": [0.5], "expression": [0.1 * k, -0.2], "jaw_pose": [0.05 * k, 0.0, 0.0]},
        )
    return root


def tree_digest(root):
    """sha256 over every path and file under `root` (to check a folder was not written)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()
