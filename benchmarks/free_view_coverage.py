# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""How much of the free-view gap is content no training camera saw?

    python benchmarks/free_view_coverage.py --capture CAPTURE EXP_OR_EVAL [EXP_OR_EVAL ...]
        [--min_views 2] [--tolerance 0.01]

The synthetic generator knows its scene, so every validation pixel's surface point can be
checked against every training frame: the point (on the head: the same point of the mesh,
posed as in that training frame) is *seen* by a training frame when it projects inside the
image and is not hidden there (its camera depth within `--tolerance` relative of the depth the
training frame's rasteriser found at that pixel). A pixel counts as covered when at least
`--min_views` training frames see its point (a surface's depth needs two views); pixels
where no geometry is (the void beyond the wall) are never covered.

For each experiment (its latest `eval/step_*/` folder, as `eval` and the benchmarks write it:
`ID_prediction.png` and `ID_target.png` per validation frame, `metrics.json` with the
distance from each validation camera to its code frame's camera) it prints the PSNR over all
pixels and over covered pixels, for the nearest and the farthest third of the validation
frames by that distance, and the covered fraction of each third. Read from the 8-bit PNGs,
so the figures differ from `eval`'s float ones in the second decimal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from flamenerf.datasets.capture import read_camera, read_dataset, read_json
from flamenerf.evaluation import metrics
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.geometry.rasterize import Fragments, rasterize
from flamenerf.synthetic import generator


def surface_points(fragments: Fragments, vertices: np.ndarray) -> np.ndarray:
    """(H, W, 3) surface point at each pixel of `fragments` on the mesh `vertices` (N, 3).

    NaN where no triangle covers the pixel.
    """
    corners = vertices[fragments.faces[np.maximum(fragments.face_index, 0)]]  # (H, W, 3, 3)
    points = np.einsum("hwk,hwkc->hwc", fragments.barycentric, corners)
    points[fragments.face_index < 0] = np.nan
    return points


def seen_by(points: np.ndarray, camera: Camera, depth: np.ndarray, tolerance: float) -> np.ndarray:
    """Which points (..., 3) `camera` sees: in front, inside the image, not hidden.

    depth: (H, W) the camera's rasterised depth (camera z, inf where empty). A point is hidden
    when its own camera z exceeds the depth at the pixel it projects to by more than
    `tolerance` times that depth. NaN points are never seen. Returns a bool array (...).
    """
    finite = np.all(np.isfinite(points), axis=-1)
    safe = np.where(finite[..., None], points, 0.0)
    z = camera.points_to_local(safe)[..., 2]
    uv = camera.project(safe)
    height, width = depth.shape
    with np.errstate(invalid="ignore"):
        inside = (
            finite
            & (z > 1e-6)
            & np.all(np.isfinite(uv), axis=-1)
            & (uv[..., 0] >= 0)
            & (uv[..., 0] < width)
            & (uv[..., 1] >= 0)
            & (uv[..., 1] < height)
        )
    i = np.clip(np.where(inside, uv[..., 0], 0).astype(np.int64), 0, width - 1)
    j = np.clip(np.where(inside, uv[..., 1], 0).astype(np.int64), 0, height - 1)
    found = depth[j, i]
    return inside & (z <= found * (1.0 + tolerance))


def generator_scene(capture: Path) -> generator.SyntheticScene:
    """The generator's scene, after checking that `capture` is one of its captures (its FLAME
    model is the procedural head, placed in the world as the generator places it)."""
    scene = generator.build_scene()
    placement = read_json(capture / "scene.json").get("flame", {})
    model = flame.load_model(capture / placement.get("model", "flame_model.npz"))
    to_world = placement.get("to_world", {})
    identity = (
        to_world.get("scale", 1.0) == 1.0
        and np.allclose(to_world.get("rotation", np.eye(3)), np.eye(3))
        and np.allclose(to_world.get("translation", np.zeros(3)), 0.0)
    )
    if model.digest() != scene.model.digest() or not identity:
        sys.exit(
            f"{capture}: not a capture of flamenerf's synthetic generator (its FLAME model or "
            "placement differs): the ground truth scene is unknown"
        )
    return scene


def coverage(
    capture: Path, val_ids: list[str], tolerance: float, scale: int = 1
) -> dict[str, np.ndarray]:
    """{val id: (H, W) int count of the training frames that see each pixel's point}.

    The validation frames are rasterised at image scale `scale` (1, 2, 4, 8: the size of the
    eval PNGs); the training frames' depth maps at 1x.
    """
    scene = generator_scene(capture)
    train_ids, _ = read_dataset(capture)

    def frame(frame_id: str) -> tuple[Camera, np.ndarray]:
        camera = read_camera(capture / "camera" / f"{frame_id}.json")
        params = flame.FlameParams.from_dict(read_json(capture / "flame" / f"{frame_id}.json"))
        head = scene.pose([params])[0]
        return camera, np.concatenate([head, scene.static_vertices])

    faces = np.concatenate([scene.head_faces, scene.static_faces + scene.num_head_vertices])
    train = []
    for frame_id in train_ids:
        camera, vertices = frame(frame_id)
        train.append((camera, vertices, rasterize(vertices, faces, camera).depth))
    counts = {}
    for frame_id in val_ids:
        camera, vertices = frame(frame_id)
        fragments = rasterize(vertices, faces, camera.scale(scale) if scale != 1 else camera)
        count = np.zeros(fragments.depth.shape, np.int64)
        for train_camera, train_vertices, depth in train:
            # The same surface point in the training frame: the same face and barycentric
            # weights on that frame's mesh (static points stay, head points move with it).
            points = surface_points(fragments, train_vertices)
            count += seen_by(points, train_camera, depth, tolerance)
        counts[frame_id] = count
    return counts


def eval_folder(path: Path) -> Path:
    """The latest eval/step_*/ folder of an experiment (or `path` itself if it has metrics)."""
    if (path / "metrics.json").is_file():
        return path
    steps = sorted((path / "eval").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    if not steps:
        sys.exit(f"{path}: no eval/step_*/metrics.json (run eval first)")
    return steps[-1]


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the pixels of mask (H, W) of images (H, W, 3) in [0, 1], converted from their
    mean squared error as `eval` does (`metrics.mse_to_psnr`: inf where equal); nan if empty."""
    if not mask.any():
        return float("nan")
    return float(metrics.mse_to_psnr(np.mean((pred[mask] - target[mask]) ** 2)))


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float64) / 255.0


def covered_report(folder: Path, counts: dict[str, np.ndarray], min_views: int) -> dict:
    """Near and far thirds of an eval folder's validation frames, all and covered pixels.

    folder: an eval/step_*/ folder; counts: `coverage`'s {val id: (H, W) count}. Returns
    {"psnr", "psnr_covered", "near", "far", "near_covered", "far_covered",
    "covered_near", "covered_far"} (the last two: covered fraction of the pixels).
    """
    metrics = json.loads((folder / "metrics.json").read_text())
    distance = {p["id"]: p["distance_m"] for p in metrics["distance"]["pairs"]}
    ids = sorted(metrics["frames"], key=lambda i: distance[i])
    third = len(ids) // 3
    if third == 0:
        sys.exit(f"{folder}: {len(ids)} evaluated frames; thirds need at least 3")
    rows = []
    for frame_id in ids:
        pred = read_png(folder / f"{frame_id}_prediction.png")
        target = read_png(folder / f"{frame_id}_target.png")
        covered = counts[frame_id] >= min_views
        everything = np.ones(covered.shape, bool)
        rows.append((psnr(pred, target, everything), psnr(pred, target, covered), covered.mean()))
    table = np.array(rows)
    near, far = table[:third], table[-third:]
    return {
        "psnr": float(table[:, 0].mean()),
        "psnr_covered": float(np.nanmean(table[:, 1])),
        "near": float(near[:, 0].mean()),
        "far": float(far[:, 0].mean()),
        "near_covered": float(np.nanmean(near[:, 1])),
        "far_covered": float(np.nanmean(far[:, 1])),
        "covered_near": float(near[:, 2].mean()),
        "covered_far": float(far[:, 2].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", required=True, type=Path, help="the generator's capture")
    parser.add_argument("experiments", nargs="+", type=Path, help="experiment or eval folders")
    parser.add_argument("--min_views", type=int, default=2, help="training views that cover")
    parser.add_argument("--tolerance", type=float, default=0.01, help="relative depth test")
    args = parser.parse_args()
    folders = [eval_folder(p) for p in args.experiments]
    evaluated = [json.loads((f / "metrics.json").read_text()) for f in folders]
    frames = {tuple(sorted(m["frames"])) for m in evaluated}
    scales = {int(m.get("scale", 1)) for m in evaluated}
    if len(frames) != 1 or len(scales) != 1:
        sys.exit("the experiments were evaluated on different frames or image scales")
    counts = coverage(args.capture, list(frames.pop()), args.tolerance, scales.pop())
    print(
        f"capture {args.capture.name}: a pixel is covered when >= {args.min_views} training "
        f"frames see its point (depth tolerance {args.tolerance:g})"
    )
    print(
        "| experiment | PSNR all | covered | near third all / covered | far third all / "
        "covered | near - far all / covered | covered fraction near / far |"
    )
    print("| --- " * 7 + "|")
    for folder in folders:
        r = covered_report(folder, counts, args.min_views)
        name = folder.parent.parent.name if folder.parent.name == "eval" else folder.name
        print(
            f"| {name} | {r['psnr']:.2f} | {r['psnr_covered']:.2f} | "
            f"{r['near']:.2f} / {r['near_covered']:.2f} | {r['far']:.2f} / "
            f"{r['far_covered']:.2f} | {r['near'] - r['far']:.2f} / "
            f"{r['near_covered'] - r['far_covered']:.2f} | "
            f"{r['covered_near']:.3f} / {r['covered_far']:.3f} |"
        )


if __name__ == "__main__":
    main()
