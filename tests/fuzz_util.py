# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Mutation fuzzing of the capture reader: an independent capture writer and the mutations.

`write_capture(root)` writes a tiny valid capture straight from docs/capture-format.md with
json, PIL and numpy only (no flamenerf code): 3 train + 1 val frames of 16x12 pixels, masks,
2x images, a camera path and a FLAME `.npz`. `MUTATIONS` breaks one thing each; `BENIGN`
changes things the format allows. `check_mutation` runs the validator (in-process, through
the CLI, or through training) on a fresh copy and returns what broke the contract:

- exit status 1 or 2 (0 for a benign change),
- a line of stderr naming the mutated file and the field (or key, or frame id),
- no Python traceback and no "unexpected" error,
- every file of the capture (and every symlink target) byte-identical afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 16, 12
TRAIN = ["t00", "t01", "t02"]
VAL = ["v00"]
NUM_SHAPE, NUM_EXPRESSION = 2, 4  # the FLAME file's split
SCENE_EXPRESSIONS = 3  # scene.json flame.num_expression
FLAME_FILE = "flame_model.npz"
# A camera on +z looking back at the origin (OpenCV: rows are the camera axes in world).
LOOK_BACK = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]
TINY_GIN = Path(__file__).parent / "gin" / "tiny.gin"


# --------------------------------------------------------------------------------------------
# The independent writer.


def dump(path: Path, value: Any) -> None:
    """json.dumps, written by hand (NaN and Infinity are written as json writes them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")


def flame_arrays() -> dict[str, np.ndarray]:
    """A FLAME-layout octahedron (radius 0.1): 6 vertices, 8 faces, 5 joints."""
    v = 0.1 * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    faces = [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]]
    weights = np.zeros((6, 5))
    weights[:, 0] = 1.0
    weights[3] = [0.0, 0.0, 1.0, 0.0, 0.0]  # the lowest vertex follows the jaw
    columns = NUM_SHAPE + NUM_EXPRESSION
    shapedirs = np.sin(np.arange(6 * 3 * columns)).reshape(6, 3, columns) * 0.004
    return {
        "v_template": v,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((6, 3, 36)),
        "J_regressor": np.full((5, 6), 1.0 / 6.0),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.uint32),
        "weights": weights,
        "f": np.array(faces, np.int32),
        "num_shape": np.array(NUM_SHAPE),
        "num_expression": np.array(NUM_EXPRESSION),
    }


def write_npz(path: Path, arrays: dict[str, Any]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def camera_json(k: int) -> dict[str, Any]:
    return {
        "orientation": LOOK_BACK,
        "position": [0.01 * k, 0.0, 0.5],
        "focal_length": 12.0,
        "principal_point": [WIDTH / 2, HEIGHT / 2],
        "skew": 0.0,
        "pixel_aspect_ratio": 1.0,
        "radial_distortion": [0.0, 0.0, 0.0],
        "tangential_distortion": [0.0, 0.0],
        "image_size": [WIDTH, HEIGHT],
    }


def frame_image(k: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """uint8 (height, width, 3) gradient image of frame k."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (np.arange(width) * 13 + 5 * k)[None, :] % 256
    image[..., 1] = (np.arange(height) * 19)[:, None] % 256
    image[..., 2] = 40 * k
    return image


def frame_mask(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : -height // 4, width // 4 : -width // 4] = 255
    return mask


def write_capture(root: Path, masks: bool = True, scaled: bool = True) -> Path:
    """The tiny valid capture (see the module docstring); returns `root`."""
    root = Path(root)
    root.mkdir(parents=True)
    ids = TRAIN + VAL
    dump(
        root / "dataset.json",
        {
            "count": len(ids),
            "num_exemplars": len(TRAIN),
            "ids": ids,
            "train_ids": TRAIN,
            "val_ids": VAL,
        },
    )
    codes = {i: {"warp_id": k, "appearance_id": k, "camera_id": 0} for k, i in enumerate(TRAIN)}
    codes["v00"] = {"warp_id": 2, "appearance_id": 2, "camera_id": 0}
    dump(root / "metadata.json", codes)
    dump(
        root / "scene.json",
        {
            "center": [0.0, 0.0, 0.0],
            "scale": 2.0,
            "near": 0.2,
            "far": 2.0,
            "flame": {
                "model": FLAME_FILE,
                "to_world": {
                    "scale": 1.0,
                    "rotation": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                    "translation": [0.0, 0.0, 0.0],
                },
                "num_expression": SCENE_EXPRESSIONS,
            },
            "bbox": [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]],
        },
    )
    write_npz(root / FLAME_FILE, flame_arrays())
    for k, frame_id in enumerate(ids):
        dump(root / "camera" / f"{frame_id}.json", camera_json(k))
        dump(
            root / "flame" / f"{frame_id}.json",
            {
                "shape": [0.3, -0.1],
                "expression": [0.1 * k, -0.2, 0.05],
                "jaw_pose": [0.02 * k, 0.0, 0.0],
                "global_pose": [0.0, 0.01, 0.0],
                "translation": [0.0, 0.0, 0.001 * k],
            },
        )
        image = frame_image(k)
        folders = [("rgb", 1, image)]
        if scaled:
            small = image.reshape(HEIGHT // 2, 2, WIDTH // 2, 2, 3).mean(axis=(1, 3))
            folders.append(("rgb", 2, np.round(small).astype(np.uint8)))
        if masks:
            folders.append(("mask", 1, frame_mask()))
        for folder, s, pixels in folders:
            (root / folder / f"{s}x").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / folder / f"{s}x" / f"{frame_id}.png")
    for n in range(2):
        dump(root / "camera-paths" / "orbit" / f"{n:04d}.json", camera_json(n))
    return root


def png_bytes(pixels: np.ndarray, depth: int, colour: int, crc_ok: bool = True) -> bytes:
    """A PNG written by hand (any bit depth PIL cannot write): pixels (H, W[, C]) integers."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc ^ (not crc_ok))

    height, width = pixels.shape[:2]
    dtype = ">u2" if depth == 16 else ">u1"
    rows = [b"\x00" + np.ascontiguousarray(row, dtype=dtype).tobytes() for row in pixels]
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def pil_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Mutations.


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One change to a fresh capture, and what the validator's message must name."""

    name: str  # unique, "category/what"
    apply: Callable[[Path], None]  # changes the capture folder in place
    file: str  # capture-relative path (or name) a message line must hold
    field: tuple[str, ...] = ()  # field, key or frame id the same line must hold
    args: tuple[str, ...] = ()  # extra validator arguments (e.g. --scale 2)

    @property
    def category(self) -> str:
        return self.name.split("/")[0]


def _json_edit(rel: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    """Loads `rel`, applies `change` (returns the new value, or None to keep the mutated one)."""

    def apply(root: Path) -> None:
        value = json.loads((root / rel).read_text())
        new = change(value)
        dump(root / rel, value if new is None else new)

    return apply


def _set(keys: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def change(raw: Any) -> None:
        for key in keys[:-1]:
            raw = raw[key]
        raw[keys[-1]] = value

    return change


def _delete(keys: tuple[Any, ...]) -> Callable[[Any], None]:
    def change(raw: Any) -> None:
        for key in keys[:-1]:
            raw = raw[key]
        del raw[keys[-1]]

    return change


def set_field(rel: str, keys: tuple[Any, ...], value: Any) -> Callable[[Path], None]:
    return _json_edit(rel, _set(keys, value))


def delete_field(rel: str, keys: tuple[Any, ...]) -> Callable[[Path], None]:
    return _json_edit(rel, _delete(keys))


def write_text(rel: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_text(text, encoding="utf-8")


def write_bytes(rel: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda root: (root / rel).write_bytes(data() if callable(data) else data)


def truncate(rel: str, keep: float | int) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        data = (root / rel).read_bytes()
        n = keep if isinstance(keep, int) else int(len(data) * keep)
        (root / rel).write_bytes(data[:n])

    return apply


def remove(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def folder_instead(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).mkdir()

    return apply


def outside(root: Path) -> Path:
    """A folder beside the capture for symlink targets (hashed with the capture)."""
    folder = root.parent / "outside"
    folder.mkdir(exist_ok=True)
    return folder


def link_outside(rel: str) -> Callable[[Path], None]:
    """Moves `rel` out of the capture (still valid) and links to it: must be refused."""

    def apply(root: Path) -> None:
        target = outside(root) / Path(rel).name
        shutil.move(root / rel, target)
        (root / rel).symlink_to(target)

    return apply


def link_folder_outside(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        target = outside(root) / rel.replace("/", "_")
        shutil.move(root / rel, target)
        (root / rel).symlink_to(target, target_is_directory=True)

    return apply


def link_loop(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).symlink_to(Path(rel).name)

    return apply


def link_dangling(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).symlink_to("no_such_file")

    return apply


def duplicate_first_key(rel: str) -> Callable[[Path], None]:
    """Writes the object's first key twice (json.loads would keep the last silently)."""

    def apply(root: Path) -> None:
        raw = json.loads((root / rel).read_text())
        key = next(iter(raw))
        body = json.dumps(raw)[1:]
        (root / rel).write_text("{" + json.dumps(key) + ": " + json.dumps(raw[key]) + ", " + body)

    return apply


def rename_id(old: str, new: str, lists: tuple[str, ...] = ("train_ids",)) -> Callable:
    def change(raw: Any) -> None:
        for key in lists:
            raw[key] = [new if i == old else i for i in raw[key]]

    return _json_edit("dataset.json", change)


def npz_edit(change: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        with np.load(root / FLAME_FILE) as npz:
            arrays = {k: npz[k] for k in npz.files}
        change(arrays)
        write_npz(root / FLAME_FILE, arrays)

    return apply


def npz_set(key: str, value: Any) -> Callable[[Path], None]:
    return npz_edit(lambda arrays: arrays.__setitem__(key, value))


def npz_delete(key: str) -> Callable[[Path], None]:
    return npz_edit(lambda arrays: arrays.__delitem__(key))


def npz_nan(key: str) -> Callable[[Path], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[key] = arrays[key].astype(np.float64)
        arrays[key].flat[1] = np.nan

    return npz_edit(change)


def image_write(rel: str, make: Callable[[], bytes]) -> Callable[[Path], None]:
    return write_bytes(rel, make)


def _rgb(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return frame_image(0, width, height)


def _json_mutations(rel: str, category: str, field: str) -> list[Mutation]:
    """File-level breakage of one JSON file (a camera path's file is not required)."""
    f = (field,)
    required = category != "camera-path"
    return [
        Mutation(f"{category}/truncated", truncate(rel, 0.5), rel),
        Mutation(f"{category}/empty", write_text(rel, ""), rel),
        Mutation(f"{category}/invalid JSON", write_text(rel, "{not json"), rel),
        Mutation(f"{category}/JSON list", write_text(rel, "[1, 2]"), rel),
        Mutation(f"{category}/JSON null", write_text(rel, "null"), rel),
        Mutation(f"{category}/not UTF-8", write_bytes(rel, b'{"\xff\xfe": 1}'), rel),
        Mutation(f"{category}/duplicate key", duplicate_first_key(rel), rel, f),
        Mutation(f"{category}/folder", folder_instead(rel), rel),
        Mutation(f"{category}/symlink outside", link_outside(rel), rel),
    ] + ([Mutation(f"{category}/missing", remove(rel), rel)] if required else [])


def build_mutations() -> list[Mutation]:
    """Every mutation, in a fixed order (names are unique)."""
    m: list[Mutation] = []
    ds, md, sc = "dataset.json", "metadata.json", "scene.json"
    cam, fl, orbit = "camera/t01.json", "flame/t02.json", "camera-paths/orbit/0000.json"
    rgb, mask, rgb2 = "rgb/1x/t00.png", "mask/1x/t01.png", "rgb/2x/t00.png"

    # Whole JSON files.
    m += _json_mutations(ds, "dataset", "count")
    m += _json_mutations(md, "metadata", "t00")
    m += _json_mutations(sc, "scene", "center")
    m += _json_mutations(cam, "camera", "orientation")
    m += _json_mutations(fl, "flame", "shape")
    m += _json_mutations(orbit, "camera-path", "orientation")
    m.append(Mutation("dataset/nested deeply", write_text(ds, "[" * 100000 + "]" * 100000), ds))
    m.append(Mutation("camera/nested deeply", write_text(cam, "[" * 100000 + "]" * 100000), cam))
    big = "1" + "0" * 5000
    m.append(Mutation("dataset/integer of 5001 digits", write_text(ds, '{"count": ' + big), ds))

    # dataset.json fields.
    for key, value, label in [
        ("count", "4", "string"),
        ("count", True, "bool"),
        ("count", 4.0, "float"),
        ("count", None, "null"),
        ("count", -1, "negative"),
        ("count", 5, "wrong"),
        ("count", float("nan"), "NaN"),
        ("count", 1e308, "1e308"),
        ("num_exemplars", "3", "string"),
        ("num_exemplars", False, "bool"),
        ("num_exemplars", 4, "wrong"),
        ("ids", "t00", "string"),
        ("ids", {"t00": 1}, "object"),
        ("ids", None, "null"),
        ("ids", ["t00", "t01", "t02", 5], "number id"),
        ("ids", ["t00", "t01", "t02", "v00", "t01"], "duplicate"),
        ("ids", ["t00", "t01", "t02"], "lacks an id"),
        ("ids", ["t00", "t01", "t02", "v00", "x"], "extra id"),
        ("train_ids", [], "empty"),
        ("train_ids", ["t00", "t01", "t02", "v00"], "overlaps val"),
        ("train_ids", ["t00", "t01", "t02", "t02"], "duplicate"),
        ("val_ids", None, "null"),
        ("val_ids", [True], "bool id"),
    ]:
        token = ("t01",) if label == "duplicate" and key == "ids" else (key,)
        token = ("t02",) if label == "duplicate" and key == "train_ids" else token
        m.append(Mutation(f"dataset/{key} {label}", set_field(ds, (key,), value), ds, token))
    for key in ("count", "num_exemplars", "ids", "train_ids", "val_ids"):
        m.append(Mutation(f"dataset/{key} missing", delete_field(ds, (key,)), ds, (key,)))
    for label, bad in [
        ("slash", "../t00"),
        ("backslash", "..\\t00"),
        ("dotdot", ".."),
        ("dot", "."),
        ("empty", ""),
        ("absolute", "/etc/passwd"),
        ("NUL", "t0\x000"),
        ("newline", "t0\n0"),
        ("300 bytes", "t" * 300),
    ]:
        lists = ("ids", "train_ids")
        shown = json.dumps(bad)[1:-1] if label not in ("NUL", "newline") else "\\x00"
        shown = "\\n" if label == "newline" else shown
        shown = "ttttt" if label == "300 bytes" else shown
        token = ("ids", shown) if bad else ("ids", "empty")
        m.append(Mutation(f"dataset/id {label}", rename_id("t00", bad, lists), ds, token))
    m.append(
        Mutation(
            "dataset/id slash val only",
            rename_id("v00", "a/b", ("val_ids",)),
            ds,
            ("val_ids", "a/b"),
        )
    )

    # metadata.json.
    for label, keys, value, token in [
        ("entry list", ("v00",), [2, 2, 0], ("v00",)),
        ("entry null", ("t01",), None, ("t01",)),
        ("warp_id string", ("t01", "warp_id"), "1", ("t01", "warp_id")),
        ("warp_id bool", ("t01", "warp_id"), True, ("t01", "warp_id")),
        ("warp_id float", ("t01", "warp_id"), 1.0, ("t01", "warp_id")),
        ("warp_id null", ("t01", "warp_id"), None, ("t01", "warp_id")),
        ("warp_id negative", ("t01", "warp_id"), -1, ("t01", "warp_id")),
        ("warp_id out of range", ("t01", "warp_id"), 3, ("t01", "warp_id")),
        ("warp_id huge", ("t01", "warp_id"), 10**30, ("t01", "warp_id")),
        ("warp_id duplicate", ("t01", "warp_id"), 0, ("t01", "warp_id")),
        ("appearance_id out of range", ("t02", "appearance_id"), 7, ("t02", "appearance_id")),
        ("val code out of range", ("v00", "appearance_id"), 3, ("v00", "appearance_id")),
        ("camera_id string", ("t00", "camera_id"), "0", ("t00", "camera_id")),
        ("camera_id NaN", ("t00", "camera_id"), float("nan"), ("t00", "camera_id")),
    ]:
        m.append(Mutation(f"metadata/{label}", set_field(md, keys, value), md, token))
    m.append(Mutation("metadata/entry missing", delete_field(md, ("v00",)), md, ("v00",)))
    m.append(
        Mutation(
            "metadata/camera_id missing",
            delete_field(md, ("t02", "camera_id")),
            md,
            ("t02", "camera_id"),
        )
    )

    # scene.json.
    rotation = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    tw = ("flame", "to_world")
    for label, keys, value, token in [
        ("center string", ("center",), [0.0, "0", 0.0], ("center",)),
        ("center 2 numbers", ("center",), [0.0, 0.0], ("center",)),
        ("center null", ("center",), None, ("center",)),
        ("center object", ("center",), {"x": 0}, ("center",)),
        ("center NaN", ("center",), [0.0, float("nan"), 0.0], ("center",)),
        ("center 1e308", ("center",), [1e308, 0.0, 0.0], ("center",)),
        ("center bool", ("center",), [True, 0.0, 0.0], ("center",)),
        ("scale zero", ("scale",), 0.0, ("scale",)),
        ("scale negative", ("scale",), -2.0, ("scale",)),
        ("scale string", ("scale",), "2", ("scale",)),
        ("scale bool", ("scale",), True, ("scale",)),
        ("scale 1e308", ("scale",), 1e308, ("scale",)),
        ("scale Infinity", ("scale",), float("inf"), ("scale",)),
        ("scale list", ("scale",), [2.0], ("scale",)),
        ("near string", ("near",), "0.2", ("near",)),
        ("near negative", ("near",), -0.1, ("near",)),
        ("near null", ("near",), None, ("near",)),
        ("near equals far", ("near",), 2.0, ("near",)),
        ("near above far", ("near",), 3.0, ("far",)),
        ("far NaN", ("far",), float("nan"), ("far",)),
        ("far -Infinity", ("far",), float("-inf"), ("far",)),
        ("flame list", ("flame",), [], ("flame",)),
        ("flame null", ("flame",), None, ("flame",)),
        ("flame.model null", ("flame", "model"), None, ("flame.model",)),
        ("flame.model number", ("flame", "model"), 5, ("flame.model",)),
        ("flame.model empty", ("flame", "model"), "", ("flame.model",)),
        ("flame.model missing file", ("flame", "model"), "nope.npz", ("flame.model",)),
        ("flame.model a folder", ("flame", "model"), "camera", ("flame.model",)),
        ("flame.model not npz", ("flame", "model"), "dataset.json", ("flame.model",)),
        ("flame.model NUL", ("flame", "model"), "flame\x00.npz", ("flame.model",)),
        ("flame extra key", ("flame", "modle"), FLAME_FILE, ("flame", "modle")),
        ("num_expression string", ("flame", "num_expression"), "3", ("num_expression",)),
        ("num_expression bool", ("flame", "num_expression"), True, ("num_expression",)),
        ("num_expression negative", ("flame", "num_expression"), -1, ("num_expression",)),
        ("num_expression float", ("flame", "num_expression"), 3.5, ("num_expression",)),
        ("num_expression above model", ("flame", "num_expression"), 5, ("num_expression",)),
        ("to_world null", tw, None, ("to_world",)),
        ("to_world list", tw, [1.0], ("to_world",)),
        ("to_world extra key", (*tw, "shear"), 0.0, ("to_world", "shear")),
        ("rotation 2x3", (*tw, "rotation"), rotation[:2], ("rotation",)),
        ("rotation scaled", (*tw, "rotation"), (2 * np.eye(3)).tolist(), ("rotation",)),
        ("rotation reflection", (*tw, "rotation"), np.diag([1.0, 1, -1]).tolist(), ("rotation",)),
        ("rotation string", (*tw, "rotation"), [rotation[0], rotation[1], "z"], ("rotation",)),
        ("translation 2 numbers", (*tw, "translation"), [0.0, 0.0], ("translation",)),
        ("translation NaN", (*tw, "translation"), [float("nan"), 0, 0], ("translation",)),
        ("to_world scale zero", (*tw, "scale"), 0, ("to_world.scale",)),
        ("to_world scale string", (*tw, "scale"), "1", ("to_world.scale",)),
        ("bbox 2x2", ("bbox",), [[0, 0], [1, 1]], ("bbox",)),
        ("bbox min above max", ("bbox",), [[1, 1, 1], [0, 0, 0]], ("bbox",)),
        ("bbox null", ("bbox",), None, ("bbox",)),
        ("bbox string", ("bbox",), "everything", ("bbox",)),
        ("overflowing placement", ("center",), [3e38, 0.0, 0.0], ("center",)),
    ]:
        m.append(Mutation(f"scene/{label}", set_field(sc, keys, value), sc, token))
    for label, keys, token in [
        ("center missing", ("center",), ("center",)),
        ("far missing", ("far",), ("far",)),
        ("flame missing", ("flame",), ("flame",)),
        ("flame.model missing", ("flame", "model"), ("flame.model",)),
        ("to_world missing", tw, ("to_world",)),
        ("rotation missing", (*tw, "rotation"), ("rotation",)),
        ("num_expression missing", ("flame", "num_expression"), ("num_expression",)),
    ]:
        m.append(Mutation(f"scene/{label}", delete_field(sc, keys), sc, token))

    # camera/ID.json.
    for label, key, value in [
        ("orientation 2x3", "orientation", LOOK_BACK[:2]),
        ("orientation scaled", "orientation", (2 * np.array(LOOK_BACK)).tolist()),
        ("orientation reflection", "orientation", np.diag([1.0, -1, 1]).tolist()),
        ("orientation string", "orientation", [LOOK_BACK[0], LOOK_BACK[1], [0, 0, "-1"]]),
        ("orientation null", "orientation", None),
        ("position 2 numbers", "position", [0.0, 0.5]),
        ("position string", "position", "origin"),
        ("position NaN", "position", [0.0, float("nan"), 0.5]),
        ("position 1e308", "position", [1e308, 0.0, 0.5]),
        ("position huge integer", "position", [10**400, 0, 1]),
        ("focal_length zero", "focal_length", 0.0),
        ("focal_length negative", "focal_length", -12.0),
        ("focal_length string", "focal_length", "12"),
        ("focal_length bool", "focal_length", True),
        ("focal_length list", "focal_length", [12.0]),
        ("focal_length Infinity", "focal_length", float("inf")),
        ("focal_length 1e308", "focal_length", 1e308),
        ("principal_point 3 numbers", "principal_point", [8.0, 6.0, 1.0]),
        ("principal_point null", "principal_point", None),
        ("skew string", "skew", "0"),
        ("pixel_aspect_ratio zero", "pixel_aspect_ratio", 0.0),
        ("pixel_aspect_ratio bool", "pixel_aspect_ratio", False),
        ("radial_distortion 2 numbers", "radial_distortion", [0.0, 0.0]),
        ("tangential_distortion object", "tangential_distortion", {"p1": 0}),
        ("image_size fraction", "image_size", [16.5, 12]),
        ("image_size zero", "image_size", [0, 12]),
        ("image_size 1 number", "image_size", [16]),
        ("image_size string", "image_size", ["16", 12]),
        ("image_size bool", "image_size", [True, 12]),
    ]:
        m.append(Mutation(f"camera/{label}", set_field(cam, (key,), value), cam, (key,)))
    for key in ("orientation", "position", "focal_length", "principal_point", "image_size"):
        m.append(Mutation(f"camera/{key} missing", delete_field(cam, (key,)), cam, (key,)))
    # A camera whose size disagrees with the image: the image is blamed, the camera named.
    for label, size in [("wider", [17, 12]), ("swapped", [12, 16])]:
        m.append(
            Mutation(
                f"camera/image_size {label} than the image",
                set_field(cam, ("image_size",), size),
                "rgb/1x/t01.png",
                ("camera/t01.json", "image_size"),
            )
        )

    # flame/ID.json.
    for label, key, value in [
        ("expression string item", "expression", [0.1, "0.25", 0.0]),
        ("expression bool item", "expression", [True, 0.0]),
        ("expression null item", "expression", [0.1, None]),
        ("expression null", "expression", None),
        ("expression object", "expression", {"0": 0.1}),
        ("expression string", "expression", "0.1 0.2"),
        ("expression number", "expression", 0.1),
        ("expression NaN", "expression", [0.1, float("nan")]),
        ("expression Infinity", "expression", [float("inf")]),
        ("expression 1e308", "expression", [1e308]),
        ("expression huge integer", "expression", [10**400]),
        ("expression nested", "expression", [[0.1, 0.2]]),
        ("expression too long", "expression", [0.1, 0.2, 0.3, 0.4]),
        ("shape too long", "shape", [0.1, 0.2, 0.3]),
        ("shape string item", "shape", ["0.3"]),
        ("jaw_pose 2 numbers", "jaw_pose", [0.1, 0.0]),
        ("jaw_pose null", "jaw_pose", None),
        ("eye_pose 3 numbers", "eye_pose", [0.0, 0.0, 0.0]),
        ("translation string item", "translation", [0.0, "0", 0.0]),
        ("global_pose bool item", "global_pose", [False, 0.0, 0.0]),
        ("unknown key", "expr", [0.1]),
    ]:
        m.append(Mutation(f"flame/{label}", set_field(fl, (key,), value), fl, (key,)))

    # Images and masks.
    bad_images = [
        ("truncated half", truncate(rgb, 0.5), ()),
        ("truncated header", truncate(rgb, 40), ()),
        ("truncated signature", truncate(rgb, 5), ()),
        ("empty", write_bytes(rgb, b""), ()),
        ("text", write_text(rgb, "not a png"), ()),
        ("JPEG bytes", write_bytes(rgb, lambda: _jpeg(_rgb())), ()),
        (
            "16-bit RGB",
            write_bytes(rgb, lambda: png_bytes(_rgb().astype(np.uint16) * 257, 16, 2)),
            ("16",),
        ),
        (
            "16-bit RGBA",
            write_bytes(
                rgb,
                lambda: png_bytes(np.dstack([_rgb(), _rgb()[..., :1]]).astype(np.uint16), 16, 6),
            ),
            ("16",),
        ),
        ("16-bit gray", write_bytes(rgb, lambda: png_bytes(_rgb()[..., 0], 16, 0)), ("16",)),
        ("palette", write_bytes(rgb, lambda: pil_png(Image.fromarray(_rgb()).quantize(8))), ()),
        ("gray", write_bytes(rgb, lambda: pil_png(Image.fromarray(_rgb()[..., 0]))), ("gray",)),
        (
            "gray+alpha",
            write_bytes(rgb, lambda: pil_png(Image.fromarray(_rgb()[..., :2], "LA"))),
            ("gray",),
        ),
        ("1-bit", write_bytes(rgb, lambda: pil_png(Image.fromarray(_rgb()).convert("1"))), ()),
        ("wrong size", write_bytes(rgb, lambda: pil_png(Image.fromarray(_rgb(17)))), ("17",)),
        ("bad CRC", write_bytes(rgb, lambda: png_bytes(_rgb(), 8, 2, crc_ok=False)), ()),
        ("missing", remove(rgb), ()),
        ("folder", folder_instead(rgb), ()),
        ("symlink outside", link_outside(rgb), ()),
        ("symlink loop", link_loop(rgb), ()),
        ("symlink dangling", link_dangling(rgb), ()),
    ]
    for label, apply, token in bad_images:
        m.append(Mutation(f"image/{label}", apply, rgb, token))
    m.append(
        Mutation(
            "image/garbage IDAT",
            write_bytes(rgb, lambda: _garbage_idat(pil_png(Image.fromarray(_rgb())))),
            rgb,
        )
    )
    m.append(Mutation("image/rgb folder symlink outside", link_folder_outside("rgb/1x"), rgb))
    for label, apply, token in [
        ("truncated", truncate(mask, 0.6), ()),
        (
            "16-bit",
            write_bytes(mask, lambda: png_bytes(frame_mask().astype(np.uint16) * 257, 16, 0)),
            ("16",),
        ),
        ("palette", write_bytes(mask, lambda: pil_png(Image.fromarray(frame_mask(), "P"))), ()),
        (
            "1-bit",
            write_bytes(mask, lambda: pil_png(Image.fromarray(frame_mask()).convert("1"))),
            (),
        ),
        (
            "wrong size",
            write_bytes(mask, lambda: pil_png(Image.fromarray(frame_mask(16, 13)))),
            ("13",),
        ),
        ("missing", remove(mask), ()),
        ("symlink outside", link_outside(mask), ()),
    ]:
        m.append(Mutation(f"mask/{label}", apply, mask, token))
    scale2 = ("--scale", "2")
    for label, apply, token in [
        ("truncated", truncate(rgb2, 0.5), ()),
        (
            "16-bit",
            write_bytes(rgb2, lambda: png_bytes(_rgb(8, 6).astype(np.uint16) * 257, 16, 2)),
            ("16",),
        ),
        ("wrong size", write_bytes(rgb2, lambda: pil_png(Image.fromarray(_rgb(16, 12)))), ("8x6",)),
        ("symlink outside", link_outside(rgb2), ()),
    ]:
        m.append(Mutation(f"image 2x/{label}", apply, rgb2, token, scale2))

    # The FLAME model file.
    npz = FLAME_FILE
    for label, apply, token in [
        ("truncated", truncate(npz, 0.5), ()),
        ("empty", write_bytes(npz, b""), ()),
        ("text", write_text(npz, "not a zip"), ()),
        ("missing", remove(npz), ()),
        ("v_template missing", npz_delete("v_template"), ("v_template",)),
        ("f missing", npz_delete("f"), ("'f'",)),
        ("num_expression missing", npz_delete("num_expression"), ("num_expression",)),
        ("v_template 2 columns", npz_set("v_template", np.zeros((6, 2))), ("v_template",)),
        ("shapedirs 2-D", npz_set("shapedirs", np.zeros((6, 18))), ("shapedirs",)),
        ("shapedirs NaN", npz_nan("shapedirs"), ("shapedirs",)),
        ("v_template NaN", npz_nan("v_template"), ("v_template",)),
        ("posedirs 35 columns", npz_set("posedirs", np.zeros((6, 3, 35))), ("posedirs",)),
        ("J_regressor 4 joints", npz_set("J_regressor", np.zeros((4, 6))), ("J_regressor",)),
        ("weights wrong shape", npz_set("weights", np.zeros((5, 5))), ("weights",)),
        ("f out of range", npz_set("f", np.array([[0, 1, 99]])), ("'f'",)),
        ("f float", npz_set("f", np.zeros((8, 3))), ("'f'",)),
        ("kintree parents", npz_set("kintree_table", np.zeros((2, 5), np.int64)), ("kintree",)),
        ("split mismatch", npz_set("num_shape", np.array(3)), ("num_shape",)),
        ("num_shape vector", npz_set("num_shape", np.array([1, 1])), ("num_shape",)),
        ("num_shape string", npz_set("num_shape", np.array("two")), ("num_shape",)),
        ("v_template strings", npz_set("v_template", np.full((6, 3), "x")), ("v_template",)),
    ]:
        m.append(Mutation(f"flame model/{label}", apply, npz, token))
    m.append(
        Mutation(
            "flame model/--flame_model missing",
            lambda root: None,
            "no_such_model.npz",
            ("--flame_model",),
            ("--flame_model", "/nonexistent/no_such_model.npz"),
        )
    )

    # Symlinks out of the capture (other than the image and JSON ones above).
    m.append(Mutation("symlink/camera folder outside", link_folder_outside("camera"), cam))
    m.append(Mutation("symlink/flame folder outside", link_folder_outside("flame"), fl))
    m.append(Mutation("symlink/camera loop", link_loop(cam), cam))
    m.append(Mutation("symlink/camera dangling", link_dangling(cam), cam))

    # Camera paths.
    m.append(
        Mutation(
            "camera-path/focal_length zero",
            set_field(orbit, ("focal_length",), 0),
            orbit,
            ("focal_length",),
        )
    )
    m.append(
        Mutation(
            "camera-path/position string",
            set_field(orbit, ("position",), ["0", 0, 1]),
            orbit,
            ("position",),
        )
    )
    m.append(Mutation("camera-path/no cameras", _empty_orbit, "camera-paths/orbit"))

    names = [x.name for x in m]
    assert len(names) == len(set(names)), "mutation names must be unique"
    return m


def _empty_orbit(root: Path) -> None:
    for path in (root / "camera-paths" / "orbit").glob("*.json"):
        path.unlink()


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _garbage_idat(data: bytes) -> bytes:
    """The PNG with its IDAT payload replaced by bytes that are not zlib (CRC kept valid)."""
    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start : start + 4])[0]
    payload = bytes((7 * i + 3) % 256 for i in range(length))
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + payload) & 0xFFFFFFFF)
    return data[: start + 8] + payload + crc + data[start + 12 + length :]


def build_benign() -> list[Mutation]:
    """Changes the format allows: the validator must still accept the capture (exit 0)."""
    cam, sc, md, fl = "camera/t01.json", "scene.json", "metadata.json", "flame/t02.json"
    rgb, mask = "rgb/1x/t00.png", "mask/1x/t01.png"

    def rgba(root: Path) -> None:
        pixels = np.dstack([frame_image(0), np.full((HEIGHT, WIDTH, 1), 200, np.uint8)])
        Image.fromarray(pixels, "RGBA").save(root / rgb)

    def gray_alpha_mask(root: Path) -> None:
        pixels = np.dstack([frame_mask(), np.full((HEIGHT, WIDTH), 255, np.uint8)])
        Image.fromarray(pixels, "LA").save(root / mask)

    def rgb_mask(root: Path) -> None:
        Image.fromarray(np.dstack([frame_mask()] * 3)).save(root / mask)

    def link_inside(root: Path) -> None:
        (root / "extra").mkdir()
        shutil.move(root / rgb, root / "extra" / "t00.png")
        (root / rgb).symlink_to(Path("..") / ".." / "extra" / "t00.png")

    def model_outside(root: Path) -> None:
        target = outside(root) / FLAME_FILE
        shutil.move(root / FLAME_FILE, target)
        set_field(sc, ("flame", "model"), str(target))(root)

    def model_link_outside(root: Path) -> None:
        link_outside(FLAME_FILE)(root)

    def no_val(root: Path) -> None:
        _json_edit(
            "dataset.json",
            lambda raw: {**raw, "count": 3, "ids": TRAIN, "val_ids": []},
        )(root)

    def no_masks(root: Path) -> None:
        shutil.rmtree(root / "mask")

    def no_scaled(root: Path) -> None:
        shutil.rmtree(root / "rgb" / "2x")

    def minimal_camera(root: Path) -> None:
        _json_edit(
            cam,
            lambda raw: {
                k: raw[k]
                for k in (
                    "orientation",
                    "position",
                    "focal_length",
                    "principal_point",
                    "image_size",
                )
            },
        )(root)

    return [
        Mutation("benign/RGBA image", rgba, rgb),
        Mutation("benign/gray+alpha mask", gray_alpha_mask, mask),
        Mutation("benign/RGB mask", rgb_mask, mask),
        Mutation("benign/camera extra key", set_field(cam, ("note",), "hi"), cam),
        Mutation("benign/camera optional keys missing", minimal_camera, cam),
        Mutation("benign/scene_to_metric", set_field(sc, ("scene_to_metric",), 1.0), sc),
        Mutation("benign/no bbox", delete_field(sc, ("bbox",)), sc),
        Mutation("benign/metadata extra id", set_field(md, ("x",), {"warp_id": 9}), md),
        Mutation("benign/metadata time_id", set_field(md, ("t00", "time_id"), 0), md),
        Mutation("benign/flame expression only", write_text(fl, '{"expression": [0.1]}'), fl),
        Mutation("benign/flame empty object", write_text(fl, "{}"), fl),
        Mutation("benign/integer numbers", set_field(cam, ("focal_length",), 12), cam),
        Mutation("benign/symlink inside", link_inside, rgb),
        Mutation("benign/model outside by absolute path", model_outside, sc),
        Mutation("benign/model symlinked outside", model_link_outside, FLAME_FILE),
        Mutation("benign/no val frames", no_val, "dataset.json"),
        Mutation("benign/no masks", no_masks, "mask"),
        Mutation("benign/no 2x images", no_scaled, "rgb/2x", (), ("--scale", "2")),
        Mutation("benign/scale 4 box-averaged", lambda root: None, "rgb", (), ("--scale", "4")),
    ]


MUTATIONS = build_mutations()
BENIGN = build_benign()


# --------------------------------------------------------------------------------------------
# Running and checking.


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_state(root: Path, depth: int = 0) -> dict[str, str]:
    """{relative path: content hash | 'dir' | 'link -> target: hash'} of everything under root.

    Symlinks are recorded by target and the target's content (files, and folders' trees).
    """
    state: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                target = os.readlink(path)
                content = "missing"
                if path.is_file():
                    content = _sha(path.read_bytes())
                elif path.is_dir() and depth < 3:
                    content = _sha(json.dumps(tree_state(path, depth + 1)).encode())
                state[rel] = f"link -> {target}: {content}"
            elif path.is_file():
                state[rel] = _sha(path.read_bytes())
            elif path.is_dir():
                state[rel] = "dir"
            else:
                state[rel] = "special"
    return state


def run_in_process(capture: Path, args: tuple[str, ...] = ()) -> tuple[int | None, str, str]:
    """validate.main in this process: (exit status, stdout, stderr)."""
    from flamenerf.datasets import validate

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = validate.main([str(capture), *args])
        except SystemExit as exit_:  # argparse errors
            code = exit_.code if isinstance(exit_.code, int) else 2
        except BaseException:  # printed as a traceback, which fails the check
            import traceback

            code = None
            traceback.print_exc(file=err)
    return code, out.getvalue(), err.getvalue()


def run_cli(capture: Path, args: tuple[str, ...] = ()) -> tuple[int | None, str, str]:
    """`python -m flamenerf.datasets.validate` as a subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "flamenerf.datasets.validate", str(capture), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def run_train(capture: Path, base_folder: Path) -> tuple[int | None, str, str]:
    """`python -m flamenerf.train` on the capture (must refuse it before training)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flamenerf.train",
            "--gin_configs",
            str(TINY_GIN),
            "--base_folder",
            str(base_folder),
            "--data_dir",
            str(capture),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    return done.returncode, done.stdout, done.stderr


def fresh_copy(pristine: Path, workdir: Path) -> Path:
    """A copy of the pristine capture at workdir/cap (workdir/outside is for link targets)."""
    workdir.mkdir(parents=True)
    return Path(shutil.copytree(pristine, workdir / "cap", symlinks=True))


def contract_problems(
    mutation: Mutation, code: int | None, out: str, err: str, benign: bool = False
) -> list[str]:
    """What in a validator run breaks the contract (empty: it holds)."""
    problems = []
    if "Traceback" in err or "Traceback" in out:
        problems.append("a Python traceback was printed")
    if "unexpected" in err:
        problems.append("an unexpected exception was reported")
    if benign:
        if code != 0:
            problems.append(f"exit status {code}, expected 0 (a valid capture)")
        return problems
    if code not in (1, 2):
        problems.append(f"exit status {code}, expected 1 or 2")
    wanted = (mutation.file, *mutation.field)
    if not any(all(token in line for token in wanted) for line in err.splitlines()):
        problems.append(f"no stderr line names {' and '.join(repr(t) for t in wanted)}")
    return problems


Runner = Callable[[Path, tuple[str, ...]], tuple[int | None, str, str]]


def check_mutation(
    mutation: Mutation, pristine: Path, workdir: Path, runner: Runner, benign: bool = False
) -> tuple[list[str], str]:
    """Applies `mutation` to a fresh copy, runs the validator; (contract problems, stderr)."""
    capture = fresh_copy(pristine, workdir)
    mutation.apply(capture)
    before = tree_state(workdir)
    code, out, err = runner(capture, mutation.args)
    problems = contract_problems(mutation, code, out, err, benign)
    if tree_state(workdir) != before:
        problems.append("the capture (or a symlink target) changed")
    return problems, err
