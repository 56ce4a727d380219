# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Where a trained model's error is, by what the synthetic generator's scene shows there.

    python benchmarks/region_error.py --base_folder EXP [--frames train|val] [--every 10]
        [--collar_px 4]

Renders frames of an experiment trained on a generator's capture (every `--every`-th
training frame, or every validation frame) with their own codes, rasterises the generator's
scene for the same frames, and splits the pixels into the head (the FLAME mesh), the collar
(torso pixels within `--collar_px` pixels of the head), the rest of the torso and the wall.
Prints, per region, the pixels per frame, the PSNR and the region's share of the squared error:
a region with a small share of the pixels and a large share of the error is what the model
cannot explain (for example a torso dragged along by the head's motion); and how far the
rendered depth is from the scene's surface there (the model's expected distance along each
ray against the distance from the camera to the rasterised surface point, in cm: the median
signed difference, positive where the model's surface lies behind the scene's, and the median
and 90th percentile of its size), which tells a wrong surface from a wrong colour. With the
FLAME guide on it also prints how far the head's ball reaches into the torso and, for the
rigid weight the experiment selects (`GuideConfig.rigid_weight`), the shares of torso vertices
it moves and of head vertices it does not fully move at rest (`rigid_weight_shares`).
"""

from __future__ import annotations

import argparse

import numpy as np
from free_view_coverage import surface_points
from scipy import ndimage

from flamenerf import cli_args
from flamenerf.datasets.capture import read_camera, read_json
from flamenerf.evaluation import metrics
from flamenerf.evaluation.evaluate import evaluate_frame
from flamenerf.geometry import flame
from flamenerf.geometry.rasterize import rasterize
from flamenerf.nerf import guide
from flamenerf.synthetic import generator
from flamenerf.training.experiment import Experiment

REGIONS = ("head", "collar", "torso", "wall")


def region_masks(face_index: np.ndarray, scene, collar_px: int) -> dict[str, np.ndarray]:
    """{region: (H, W) bool} from the rasterised face index (H, W) of head + static faces.

    Faces are numbered head first, then `scene.static_faces` (torso faces, then the wall's).
    """
    num_head = len(scene.head_faces)
    torso_faces = (scene.static_faces < scene.num_torso_vertices).all(axis=1)
    is_torso = np.concatenate([np.zeros(num_head, bool), torso_faces])
    covered = face_index >= 0
    head = covered & (face_index < num_head)
    torso = covered & is_torso[np.maximum(face_index, 0)]
    near_head = ndimage.binary_dilation(head, iterations=collar_px) if collar_px else head
    collar = torso & near_head
    return {
        "head": head,
        "collar": collar,
        "torso": torso & ~collar,
        "wall": covered & ~head & ~torso,
    }


def region_table(errors: list[np.ndarray], masks: list[dict[str, np.ndarray]]) -> dict:
    """{region: (pixels per frame, PSNR, share of the squared error)} over frames.

    errors: per frame (H, W) squared error averaged over channels; masks: `region_masks`.
    The PSNR is the region's mean squared error over all its pixels of all frames, converted
    as `eval` does (`metrics.mse_to_psnr`: inf without error); nan for a region without pixels.
    """
    total = sum(float(e.sum()) for e in errors)
    table = {}
    for name in REGIONS:
        squared = sum(float(e[m[name]].sum()) for e, m in zip(errors, masks, strict=True))
        pixels = sum(int(m[name].sum()) for m in masks)
        psnr = float(metrics.mse_to_psnr(squared / pixels)) if pixels else float("nan")
        table[name] = (pixels / len(errors), psnr, squared / total if total else float("nan"))
    return table


def surface_distance(vertices: np.ndarray, fragments, camera) -> np.ndarray:
    """(H, W) metres from `camera`'s centre to the surface point rasterised at each pixel.

    vertices: (V, 3) world (metres) positions the `fragments` were rasterised from. NaN where
    no triangle covers the pixel.
    """
    return np.linalg.norm(surface_points(fragments, vertices) - camera.position, axis=-1)


def rendered_distance(
    depth: np.ndarray, directions: np.ndarray, units_per_metre: float
) -> np.ndarray:
    """The renderer's depth as metres along the ray from its origin (the camera's centre).

    depth: (...) expected ray parameter t (the ray is origin + t * direction, normalised scene
    units); directions: (..., 3) the rays' directions (not unit length); units_per_metre: the
    capture's normalised units per metre (`Scene.units_per_metre`).
    """
    return depth * np.linalg.norm(directions, axis=-1) / units_per_metre


def depth_table(
    differences: list[np.ndarray], masks: list[dict[str, np.ndarray]]
) -> dict[str, tuple[float, float, float]]:
    """{region: (median, median of the size, 90th percentile of the size)} in cm.

    differences: per frame (H, W) rendered minus true distance, metres (NaN where the scene
    has no surface: never counted); masks: `region_masks`. NaNs for a region without pixels.
    """
    table = {}
    for name in REGIONS:
        values = np.concatenate([d[m[name]] for d, m in zip(differences, masks, strict=True)])
        values = 100.0 * values[np.isfinite(values)]
        if values.size == 0:
            table[name] = (float("nan"),) * 3
            continue
        size = np.abs(values)
        table[name] = (
            float(np.median(values)),
            float(np.median(size)),
            float(np.quantile(size, 0.9)),
        )
    return table


def torso_in_head_ball(scene, fade_m: float, shape=None) -> tuple[float, float, float]:
    """The guide's head ball at rest on the generator's head (`guide.head_ball`: the middle of
    the head vertices' box, radius to the farthest) against the generator's torso: (radius in
    metres, fraction of torso vertices inside it, fraction within it plus `fade_m`), for the
    identity `shape` (None: the template)."""
    neutral = scene.pose([flame.FlameParams(shape=shape)])  # (1, V, 3) FLAME space at rest
    head = guide.head_vertices(scene.model)
    _, _, centre, radius = guide.head_ball(np.eye(4)[None], neutral, head)
    torso = scene.static_vertices[: scene.num_torso_vertices]
    distance = np.linalg.norm(torso - centre[0], axis=-1)
    return (
        float(radius[0]),
        float((distance < radius[0]).mean()),
        float((distance < radius[0] + fade_m).mean()),
    )


def rigid_weight_shares(capture, config, scene=None) -> dict[str, float]:
    """What the FLAME guide's rigid part moves with the head at rest, for the weight `config`
    selects (`GuideConfig.rigid_weight`: the head's ball, or the ball above the neck;
    `guide.rest_weight`), on the capture's identity (its first training frame's) against the
    generator's torso (`scene`, default `generator.build_scene()`), in FLAME space (metres).

    Returns:
      {"torso_moved": share of the torso's vertices with weight > 0, "torso_half": > 0.5,
       "head_partial": share of the head's vertices (`guide.head_vertices`) with weight < 1}.
    """
    scene = generator.build_scene() if scene is None else scene
    params = capture.flame_params[capture.train_ids[0]]
    subject = capture.subject
    neutral = subject.pose_flame([subject.neutral(params, undo_rigid=True)])  # (1, V, 3)
    head = guide.head_vertices(capture.flame_model)
    _, _, centre, radius = guide.head_ball(np.eye(4)[None], neutral, head)
    neck = None
    if config.rigid_weight == "neck":
        root, up = guide.neck_frame(subject, [params], lambda x: x)[0]
        neck = (root + (config.neck_level_m - config.neck_fade_m) * up, up, config.neck_fade_m)
    weight = lambda points: guide.rest_weight(
        points, centre[0], float(radius[0]), config.rigid_fade_m, neck
    )
    torso = weight(scene.static_vertices[: scene.num_torso_vertices])
    return {
        "torso_moved": float(np.mean(torso > 0)),
        "torso_half": float(np.mean(torso > 0.5)),
        "head_partial": float(np.mean(weight(neutral[0][head]) < 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli_args.add_base_folder(parser, local=True)
    parser.add_argument("--frames", choices=("train", "val"), default="train")
    parser.add_argument("--every", type=int, default=10, help="every N-th training frame")
    parser.add_argument("--collar_px", type=int, default=4, help="collar width, pixels")
    args = parser.parse_args()
    scene = generator.build_scene()
    faces = np.concatenate([scene.head_faces, scene.static_faces + scene.num_head_vertices])
    with Experiment.restore(args.base_folder) as restored:
        exp, state = restored.exp, restored.state
        capture = exp.capture
        if capture.flame_model.digest() != scene.model.digest():
            raise SystemExit(
                f"{capture.root}: not a capture of flamenerf's synthetic generator (another "
                "FLAME model): the ground truth scene is unknown"
            )
        fade_m = exp.guide_config.rigid_fade_m if exp.guide_config.enabled else None
        shares = rigid_weight_shares(capture, exp.guide_config, scene) if fade_m else None
        shape = capture.flame_params[capture.train_ids[0]].shape
        ids = capture.train_ids[:: args.every] if args.frames == "train" else capture.val_ids
        grids = exp.extras(frames=ids).guide
        alpha = exp.warp_alpha(restored.checkpoint)
        units = capture.scene.units_per_metre
        errors, masks, differences = [], [], []
        for frame_id in ids:
            frame = evaluate_frame(
                exp.renderer,
                capture,
                frame_id,
                state.params,
                alpha,
                grids,
                use_jaw=exp.expression_config.use_jaw,
                names=["psnr"],
            )
            errors.append(((np.clip(frame.render["rgb"], 0, 1) - frame.target) ** 2).mean(-1))
            camera = read_camera(capture.root / "camera" / f"{frame_id}.json")
            params = flame.FlameParams.from_dict(
                read_json(capture.root / "flame" / f"{frame_id}.json")
            )
            vertices = np.concatenate([scene.pose([params])[0], scene.static_vertices])
            camera = camera.scale(capture.scale)
            fragments = rasterize(vertices, faces, camera)
            masks.append(region_masks(fragments.face_index, scene, args.collar_px))
            model_camera = capture.cameras[frame_id]  # the normalised frame the rays are in
            _, directions = model_camera.pixels_to_rays(model_camera.get_pixel_centers())
            rendered = rendered_distance(np.asarray(frame.render["depth"]), directions, units)
            differences.append(rendered - surface_distance(vertices, fragments, camera))
    print(f"{args.base_folder}: {len(ids)} {args.frames} frames, step {restored.checkpoint}")
    print(
        "| region | pixels per frame | PSNR | share of the squared error | depth error, cm: "
        "median | median size | 90th percentile size |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    depths = depth_table(differences, masks)
    for name, (pixels, psnr, share) in region_table(errors, masks).items():
        median, size, p90 = depths[name]
        print(
            f"| {name} | {pixels:.1f} | {psnr:.2f} | {share:.2f} | {median:+.2f} | {size:.2f} "
            f"| {p90:.2f} |"
        )
    if fade_m is not None:
        radius, inside, faded = torso_in_head_ball(scene, fade_m, shape)
        print(
            f"guide's head ball at rest: radius {100 * radius:.1f} cm; torso vertices inside "
            f"it {100 * inside:.1f}%, within it plus the {100 * fade_m:g} cm fade "
            f"{100 * faded:.1f}%"
        )
        print(
            f"guide's rigid weight ({exp.guide_config.rigid_weight!r}) at rest: torso vertices "
            f"moved {100 * shares['torso_moved']:.1f}% (weight > 0.5: "
            f"{100 * shares['torso_half']:.1f}%); head vertices not fully moved (weight < 1) "
            f"{100 * shares['head_partial']:.2f}%"
        )


if __name__ == "__main__":
    main()
