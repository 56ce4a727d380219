# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""VHAP's tracking output, for `import-flame --from vhap PATH`; PATH is

a NeRF export folder (transforms.json: OpenGL camera-to-world `transform_matrix`,
`fl_x fl_y cx cy w h` with cy measured from the bottom, as VHAP's OpenGL
intrinsics are, per-frame `flame_param_path` npz, or `exp_path` text for a
mesh-mode export), or a `tracked_flame_params*.npz` file or its folder (the highest
epoch is taken). A monocular npz (with `focal_length`) carries VHAP's fixed camera
at (0, 0, 1); a calibrated one has no cameras (use the export).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.conventions import camera_from_c2w
from flamenerf.capture.trackers.nerf_export import nerf_camera, nerf_frames
from flamenerf.capture.trackers.parsing import (
    checked_image_size,
    field,
    read_npz,
    read_text_vector,
    stem,
    values,
    vector,
)
from flamenerf.capture.trackers.track import Track, TrackerFrame, TrackerSpec
from flamenerf.geometry import flame

# VHAP's per-timestep npz keys -> (FlameParams field, vector length; None: any).
VHAP_KEYS = {
    "rotation": ("global_pose", 3),
    "neck_pose": ("neck_pose", 3),
    "jaw_pose": ("jaw_pose", 3),
    "eyes_pose": ("eye_pose", 6),
    "translation": ("translation", 3),
    "expr": ("expression", None),
}


def _vhap_params(raw: Mapping[str, np.ndarray], source: Path) -> list[flame.FlameParams]:
    """The FLAME parameters of every timestep of a VHAP npz ((T, k) arrays, shape shared)."""
    shape = vector(field(raw, "shape", source), source, "shape")
    arrays = {
        name: values(field(raw, key, source), source, key, (None, size))
        for key, (name, size) in VHAP_KEYS.items()
    }
    lengths = {key: len(arrays[name]) for key, (name, _) in VHAP_KEYS.items()}
    if len(set(lengths.values())) != 1:
        raise StepError(f"{source}: per-timestep fields of different lengths {lengths}")
    count = lengths["rotation"]
    return [
        flame.FlameParams(shape=shape, **{f: a[i] for f, a in arrays.items()}) for i in range(count)
    ]


def _vhap_npz_file(path: Path) -> Path:
    """The npz to read: `path` itself, or the highest-epoch tracked_flame_params*.npz in it."""
    if path.is_file():
        return path
    candidates = sorted(path.glob("tracked_flame_params*.npz"))
    if not candidates:
        raise StepError(f"{path}: found neither transforms.json nor tracked_flame_params*.npz")
    epochs = [re.search(r"_(\d+)$", c.stem) for c in candidates]
    if len(candidates) > 1 and not all(epochs):
        raise StepError(
            f"{path}: several tracked_flame_params*.npz without epoch numbers; pass one file"
        )
    return max(zip(candidates, epochs, strict=True), key=lambda c: int(c[1][1]) if c[1] else 0)[0]


def read_vhap(path: Path) -> Track:
    """VHAP: a NeRF export folder / transforms.json, or tracked_flame_params*.npz."""
    notes = ["VHAP tracks FLAME 2023 (with teeth); parameters are used as they are"]
    if path.name == "transforms.json" or (path.is_dir() and (path / "transforms.json").is_file()):
        json_path, top, raw_frames = nerf_frames(path)
        frames, cache = [], {}
        for k, raw in enumerate(raw_frames):
            source = f"{json_path}: frames[{k}]"
            camera = nerf_camera(raw, top, source, opengl=True, flip_cy=True)
            names = [stem(field(raw, "file_path", source))]
            if "timestep_id" in raw:
                names.append(str(raw["timestep_id"]))
            if "flame_param_path" in raw:
                npz_path = json_path.parent / str(raw["flame_param_path"])
                if npz_path not in cache:
                    params = _vhap_params(read_npz(npz_path), npz_path)
                    if len(params) != 1:
                        raise StepError(f"{npz_path}: expected one timestep, found {len(params)}")
                    cache[npz_path] = params[0]
                params = cache[npz_path]
            elif "exp_path" in raw:
                exp = read_text_vector(json_path.parent / str(raw["exp_path"]), "exp_path")
                params = flame.FlameParams(expression=exp)
            else:
                raise StepError(f"{source}: missing field 'flame_param_path' (or 'exp_path')")
            frames.append(TrackerFrame(tuple(names), params, camera))
        if any(f.params.jaw_pose is None for f in frames):
            notes.append("mesh-mode export: expression only (shape and poses are in the meshes)")
        return Track(frames, notes=tuple(notes))

    npz_path = _vhap_npz_file(path)
    print(f"VHAP: reading {npz_path}")
    raw = read_npz(npz_path)
    params = _vhap_params(raw, npz_path)
    count = len(params)
    names = (
        np.asarray(raw["timestep_id"]).astype(str).reshape(-1).tolist()
        if "timestep_id" in raw
        else [str(i) for i in range(count)]
    )
    if len(names) != count:
        raise StepError(
            f"{npz_path}: field 'timestep_id': expected {count} ids, found {len(names)}"
        )
    camera = None
    if "focal_length" in raw:
        # VHAP's uncalibrated camera: OpenGL world-to-camera [I | (0, 0, -1)], i.e. at (0, 0, 1)
        # looking down -z, focal focal_length * max(h, w), principal point at the image centre.
        height, width = values(field(raw, "image_size", npz_path), npz_path, "image_size", (2,))
        size = checked_image_size(width, height, npz_path)
        focal = float(vector(raw["focal_length"], npz_path, "focal_length", 1)[0]) * max(size)
        c2w = np.eye(4)
        c2w[2, 3] = 1.0
        intrinsics = (focal, focal, size[0] / 2, size[1] / 2)
        camera = camera_from_c2w(c2w, intrinsics, size, npz_path, opengl=True)
    else:
        notes.append("calibrated VHAP npz: no cameras (pass the NeRF export folder for them)")
    if "static_offset" in raw:
        notes.append("VHAP's static_offset (per-vertex offsets) cannot be represented; ignored")
    frames = [TrackerFrame((name,), p, camera) for name, p in zip(names, params, strict=True)]
    return Track(frames, notes=tuple(notes))


TRACKER = TrackerSpec(name="vhap", title="VHAP", doc=__doc__, read=read_vhap)
