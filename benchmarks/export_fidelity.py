# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""How faithful the exported avatar is: baked asset vs the NeRF vs the ground truth.

    python benchmarks/export_fidelity.py --base_folder EXP --out SCRATCH [--figure SHEET.png]
        [--frames N] [--supersample K] [--resolution 96] [--head_resolution 160]
        [--refine_frames 120] [--appearance mean|frame] ... (every BakeOptions field)

For each validation frame of the experiment (its camera and FLAME parameters): (a) the NeRF,
rendered by the project's evaluation renderer (`evaluation.evaluate.evaluate_frame`, the
frame's own codes, expression and guide grid), and (b) the baked asset, rendered by
`flamenerf.export.preview.render` with the same camera and the frame's expression, jaw and
head yaw/pitch (`rig.pose_from_flame`), `--supersample` x `--supersample` samples per pixel
(the viewer's default at these sizes, `preview.VIEWER_SUPERSAMPLE`), both compared with the
ground truth: PSNR over the whole image and in the face (inside the FLAME silhouette, as
`eval` scores it: `evaluation.metrics.psnr` with the frame's mask), and the baked render
against the NeRF's. Prints a markdown table with the asset's size (MB), triangles and
vertices, a second table splitting the face (`region_rows`): the outline band (the face's
pixels within BAND pixels of the silhouette's edge), the face inside that band, and frames
with the jaw open (jaw_pose[0] at least OPEN_JAW rad) or closed, and writes a contact sheet
(one row per frame: ground truth | NeRF | baked) to `--figure`. Every `BakeOptions` field is
a flag (`--refine_frames 0`: no colour fit).

The bake's stages are cached in SCRATCH/.export (rerunning with other colouring options
reuses the density grid) and the NeRF renders in SCRATCH/nerf-STEP.npz. Nothing is written
into the experiment folder except what restoring it writes anyway (nothing); the FLAME-guide
grids go to the cache folder (FLAMENERF_CACHE). Times are not measured here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_erosion

from flamenerf import cli_args
from flamenerf.evaluation import metrics
from flamenerf.evaluation.evaluate import evaluate_frame
from flamenerf.export import bake, gltf, pipeline, preview, rig
from flamenerf.io.media import write_png
from flamenerf.training.experiment import Experiment

BAND = 2  # pixels: the outline band is the face within this of the silhouette's edge
OPEN_JAW = 0.1  # rad: frames with jaw_pose[0] at least this count as open-jawed


def face_regions(mask: np.ndarray, band: int = BAND) -> dict[str, np.ndarray]:
    """bool (H, W) masks of a FLAME silhouette's regions: "face" (the silhouette), "band" (its
    pixels within `band` pixels of its edge: not kept by `band` erosions with a 3x3 cross)
    and "inner" (the rest)."""
    face = np.asarray(mask, bool).reshape(np.shape(mask)[:2])
    inner = binary_erosion(face, iterations=band)
    return {"face": face, "band": face & ~inner, "inner": inner}


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    return float(metrics.psnr(np.asarray(pred, np.float32), np.asarray(target, np.float32), mask))


def nerf_renders(exp, state, checkpoint: int, ids: list[str], path: Path) -> dict[str, dict]:
    """{id: {"rgb", "target", "mask"}} of the NeRF's validation renders (cached in `path`)."""
    if path.is_file():
        with np.load(path) as data:
            if all(f"{i}/rgb" in data for i in ids):
                return {i: {k: data[f"{i}/{k}"] for k in ("rgb", "target", "mask")} for i in ids}
    grids = exp.extras().guide
    alpha = exp.warp_alpha(checkpoint)
    out = {}
    for frame_id in ids:
        frame = evaluate_frame(
            exp.renderer,
            exp.capture,
            frame_id,
            state.params,
            alpha,
            grids,
            use_jaw=exp.expression_config.use_jaw,
            names=["psnr"],
        )
        out[frame_id] = {
            "rgb": np.clip(frame.render["rgb"], 0, 1),
            "target": frame.target,
            "mask": frame.mask,
        }
    np.savez(path, **{f"{i}/{k}": v for i, d in out.items() for k, v in d.items()})
    return out


def baked_render(
    asset: gltf.Asset, capture, frame_id: str, supersample: int = preview.VIEWER_SUPERSAMPLE
) -> np.ndarray:
    """The asset rendered with a frame's camera and FLAME parameters, `supersample` x
    `supersample` samples per pixel (the viewer's default)."""
    scene = capture.scene
    camera = pipeline.world_camera(capture.cameras[frame_id], scene)
    near, far = asset.info["near"], asset.info["far"]
    pose = rig.pose_from_flame(capture.flame_params[frame_id], scene.num_expression)
    return preview.render(
        asset,
        preview.gl_from_camera(camera),
        preview.projection_matrix(camera, near, far),
        camera.width,
        camera.height,
        pose,
        supersample,
    )


def region_rows(table: list[dict[str, float]]) -> list[list[str]]:
    """The region table's rows: [region, frames, NeRF PSNR, asset PSNR] (means over frames)."""
    opened = [t for t in table if t["jaw"] >= OPEN_JAW]
    closed = [t for t in table if t["jaw"] < OPEN_JAW]
    rows = []
    for label, key, frames in (
        ("face", "psnr_face", table),
        ("outline band", "psnr_band", table),
        ("face inside the band", "psnr_inner", table),
        ("face, jaw open", "psnr_face", opened),
        ("face, jaw closed", "psnr_face", closed),
        ("face inside the band, jaw closed", "psnr_inner", closed),
    ):
        if frames:
            nerf = np.nanmean([t[f"nerf_{key}"] for t in frames])
            baked = np.nanmean([t[f"baked_{key}"] for t in frames])
            rows.append([label, str(len(frames)), f"{nerf:.2f}", f"{baked:.2f}"])
    return rows


def contact_sheet(rows: list[list[np.ndarray]], zoom: int = 4, gap: int = 2) -> np.ndarray:
    """Images in a grid (rows of equal-size images), each enlarged `zoom` times, white gaps."""
    height, width = rows[0][0].shape[:2]
    h, w = height * zoom, width * zoom
    columns = max(len(r) for r in rows)
    sheet = np.ones((len(rows) * (h + gap) - gap, columns * (w + gap) - gap, 3))
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            big = np.repeat(np.repeat(np.asarray(image)[..., :3], zoom, axis=0), zoom, axis=1)
            sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = big
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli_args.add_base_folder(parser)
    parser.add_argument("--out", required=True, help="scratch folder (bake cache, renders, glb)")
    parser.add_argument("--figure", help="contact sheet PNG (GT | NeRF | baked per frame)")
    cli_args.add_checkpoint(parser)
    parser.add_argument("--frames", type=int, help="first N validation frames (default: all)")
    parser.add_argument(
        "--supersample",
        type=int,
        default=preview.VIEWER_SUPERSAMPLE,
        help="samples per pixel along each axis of the asset's renders (the viewer's default)",
    )
    defaults = bake.BakeOptions()
    for field in dataclasses.fields(bake.BakeOptions):
        kind = type(getattr(defaults, field.name))
        parser.add_argument(f"--{field.name}", type=kind, default=getattr(defaults, field.name))
    args = parser.parse_args(argv)
    options = bake.BakeOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(bake.BakeOptions)}
    )
    out = Path(args.out)
    (out / pipeline.CACHE_FOLDER).mkdir(parents=True, exist_ok=True)
    with Experiment.restore(args.base_folder, args.checkpoint) as restored:
        exp, state = restored.exp, restored.state
        capture = exp.capture
        ids = capture.val_ids[: args.frames] if args.frames else list(capture.val_ids)
        built = pipeline.build_asset(
            restored,
            pipeline.ExportOptions(bake=options),
            out / pipeline.CACHE_FOLDER,
            show_progress=True,
        )
        glb = gltf.write_glb(built.asset)
        (out / "avatar.glb").write_bytes(glb)
        nerf = nerf_renders(
            exp, state, restored.checkpoint, ids, out / f"nerf-{restored.checkpoint}.npz"
        )
        table, sheet = [], []
        for frame_id in ids:
            n = nerf[frame_id]
            baked = baked_render(built.asset, capture, frame_id, args.supersample)
            mask = n["mask"]
            regions = face_regions(mask)
            jaw = capture.flame_params[frame_id].jaw_pose
            table.append(
                {
                    "nerf_psnr": psnr(n["rgb"], n["target"]),
                    "nerf_psnr_face": psnr(n["rgb"], n["target"], mask),
                    "baked_psnr": psnr(baked, n["target"]),
                    "baked_psnr_face": psnr(baked, n["target"], mask),
                    "baked_vs_nerf": psnr(baked, n["rgb"]),
                    "baked_vs_nerf_face": psnr(baked, n["rgb"], mask),
                    "nerf_psnr_band": psnr(n["rgb"], n["target"], regions["band"]),
                    "baked_psnr_band": psnr(baked, n["target"], regions["band"]),
                    "nerf_psnr_inner": psnr(n["rgb"], n["target"], regions["inner"]),
                    "baked_psnr_inner": psnr(baked, n["target"], regions["inner"]),
                    "jaw": 0.0 if jaw is None else float(np.asarray(jaw).reshape(-1)[0]),
                }
            )
            sheet.append([n["target"], n["rgb"], baked])
        mean = {k: float(np.nanmean([t[k] for t in table])) for k in table[0]}
        report = built.report
        size_mb = len(glb) / 1e6
        triangles = sum(report["triangles"].values())
        vertices = sum(report["vertices"].values())
        print(f"\n{args.base_folder} step {restored.checkpoint}, {len(ids)} validation frames")
        print(f"bake options: {json.dumps(options.as_dict())}")
        print(f"colour fit: {json.dumps(built.report['colour_fit'])}")
        print(f"asset rendered with {args.supersample} x {args.supersample} samples per pixel\n")
        print("| render | PSNR vs GT | face PSNR vs GT | PSNR vs NeRF | face PSNR vs NeRF |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| NeRF | {mean['nerf_psnr']:.2f} | {mean['nerf_psnr_face']:.2f} | - | - |")
        print(
            f"| baked asset | {mean['baked_psnr']:.2f} | {mean['baked_psnr_face']:.2f} | "
            f"{mean['baked_vs_nerf']:.2f} | {mean['baked_vs_nerf_face']:.2f} |"
        )
        print(
            f"\nthe face by region (outline band: {BAND} px inside the silhouette's edge; "
            f"open jaw: jaw_pose[0] >= {OPEN_JAW} rad)\n"
        )
        print("| region | frames | NeRF vs GT | asset vs GT |")
        print("| --- | --- | --- | --- |")
        for row in region_rows(table):
            print("| " + " | ".join(row) + " |")
        print(
            f"\nasset: {size_mb:.2f} MB, {triangles} triangles ({report['triangles']}), "
            f"{vertices} vertices ({report['vertices']}), grid {report['grid_shape']}"
        )
        (out / "fidelity.json").write_text(
            json.dumps(
                {
                    "mean": mean,
                    "frames": dict(zip(ids, table, strict=True)),
                    "asset": report,
                    "glb_bytes": len(glb),
                },
                indent=2,
            )
        )
        if args.figure:
            write_png(args.figure, contact_sheet(sheet))
            print(f"contact sheet: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
