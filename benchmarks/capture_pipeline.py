# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""A phone video through the whole capture pipeline, against the ground truth (issue 10).

    python benchmarks/capture_pipeline.py [--size 256] [--video_frames 40] [--steps 1000]
        [--scale 4] [--out bench_out/pipeline] [--noise_px 1.0]

1. A synthetic capture with head motion is rendered at SIZE x SIZE (the truth: cameras, FLAME
   parameters) and written as an mp4, the "phone video".
2. `frames` (every video frame kept, every 8th for validation) -> `cameras` (pycolmap
   structure from motion) -> landmarks: the truth's 51 model landmarks projected by the true
   cameras plus Gaussian pixel noise (a perfect detector with NOISE_PX error) -> `fit` ->
   `check`.
3. Reported: camera errors after a similarity alignment of the camera centres, the fit's
   reprojection error and its mesh error in mm (after the same alignment); then
   `gin/demo.gin` (at image scale SCALE, STEPS steps) is trained on the pipeline's capture
   and on the truth with the same frames and split, and both are evaluated on the same
   validation frames.
Nothing else should run on the machine meanwhile (the minutes are reported).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import jax
import mediapy
import numpy as np
from scipy.spatial.transform import Rotation

from flamenerf import train
from flamenerf.capture import io
from flamenerf.capture.__main__ import main as capture_main
from flamenerf.capture.trackers.similarity import umeyama
from flamenerf.evaluation import evaluate
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera
from flamenerf.io.media import ffmpeg_path
from flamenerf.synthetic import generator as synthetic
from flamenerf.training import experiment


def true_landmarks(truth: Path, frame_id: str, model: flame.FlameModel) -> np.ndarray:
    """(L, 2) pixel positions of the model's landmarks in the truth's frame `frame_id`."""
    params = flame.FlameParams.from_dict(
        json.loads((truth / "flame" / f"{frame_id}.json").read_text())
    )
    points = np.asarray(flame.forward(model, flame.padded(model, params)).landmarks)
    return Camera.from_json(truth / "camera" / f"{frame_id}.json").project(points)


def posed_vertices(capture: Path, frame_id: str, model: flame.FlameModel) -> np.ndarray:
    """(V, 3) FLAME vertices of a frame in the capture's world (scene.json's to_world)."""
    raw = json.loads((capture / "flame" / f"{frame_id}.json").read_text())
    params = flame.FlameParams.from_dict(raw)
    vertices = np.asarray(flame.forward(model, flame.padded(model, params)).vertices)
    to_world = json.loads((capture / "scene.json").read_text())["flame"]["to_world"]
    rotation = np.asarray(to_world["rotation"])
    return to_world["scale"] * vertices @ rotation.T + np.asarray(to_world["translation"])


def rigid_error(points: np.ndarray, target: np.ndarray) -> float:
    """Mean distance between (V, 3) `points` and `target` after the best rotation+translation."""
    a, b = points - points.mean(axis=0), target - target.mean(axis=0)
    rotation, _ = Rotation.align_vectors(b, a)
    return float(np.linalg.norm(rotation.apply(a) - b, axis=-1).mean())


def make_inputs(out: Path, size: int, frames: int, noise_px: float) -> tuple[Path, Path, dict]:
    """Renders the truth, writes the video and runs the capture steps; returns the figures."""
    truth = synthetic.generate(
        out / "truth", size=size, frames=frames, val=0, seed=2, head_motion=True, overwrite=True
    )
    truth_ids = sorted(p.stem for p in (truth / "camera").glob("*.json"))
    video = out / "phone.mp4"
    if ffmpeg_path() is None:  # also points mediapy at imageio-ffmpeg's binary
        raise SystemExit("no ffmpeg binary: install Debian's ffmpeg or imageio-ffmpeg<0.8")
    images = [mediapy.read_image(truth / "rgb" / "1x" / f"{i}.png")[..., :3] for i in truth_ids]
    mediapy.write_video(video, np.stack(images), fps=24)

    capture = out / "capture"
    shutil.rmtree(capture, ignore_errors=True)
    figures: dict = {}
    started = time.time()
    assert (
        capture_main(
            [
                "frames",
                str(video),
                "--out",
                str(capture),
                "--max_frames",
                str(frames),
                "--val_every",
                "8",
            ]
        )
        == 0
    )
    assert capture_main(["cameras", str(capture)]) == 0
    figures["minutes frames+cameras"] = (time.time() - started) / 60
    train_ids, val_ids = io.read_split(capture)
    to_truth = {f"{n:06d}": truth_id for n, truth_id in enumerate(truth_ids)}

    # Cameras against the truth, after the similarity that best maps the centres.
    ids = sorted(train_ids + val_ids)
    found = {i: Camera.from_json(capture / "camera" / f"{i}.json") for i in ids}
    real = {i: Camera.from_json(truth / "camera" / f"{to_truth[i]}.json") for i in ids}
    align = umeyama(
        np.stack([found[i].position for i in ids]), np.stack([real[i].position for i in ids])
    )
    position_error = [
        np.linalg.norm(align.apply(found[i].position) - real[i].position) for i in ids
    ]
    rotation_error = [
        np.degrees(
            Rotation.from_matrix(
                found[i].orientation @ align.rotation.T @ real[i].orientation.T
            ).magnitude()
        )
        for i in ids
    ]
    figures["registered frames"] = f"{len(ids)} of {frames}"
    figures["camera position error mm (mean, max)"] = (
        1e3 * np.mean(position_error),
        1e3 * np.max(position_error),
    )
    figures["camera rotation error deg (mean, max)"] = (
        np.mean(rotation_error),
        np.max(rotation_error),
    )
    figures["focal length error %"] = 100 * np.mean(
        [found[i].focal_length / real[i].focal_length - 1 for i in ids]
    )

    # Landmarks: the truth's, projected, plus noise; then the fit and the check.
    shutil.copy(truth / "flame_model.npz", capture / "flame_model.npz")
    io.update_scene(capture, flame={"model": "flame_model.npz"})
    model = flame.load_model(capture / "flame_model.npz")
    rng = np.random.default_rng(0)
    folder = out / "landmarks"
    shutil.rmtree(folder, ignore_errors=True)
    for i in ids:
        points = true_landmarks(truth, to_truth[i], model) + rng.normal(
            scale=noise_px, size=(len(model.lmk_faces_idx), 2)
        )
        io.write_json(
            folder / f"{i}.json",
            {
                "layout": "model",
                "image_size": [size, size],
                "points": points,
                "source": "truth + noise",
            },
        )
    started = time.time()
    assert capture_main(["fit", str(capture), "--landmarks_from", str(folder), "--quiet"]) == 0
    figures["minutes fit"] = (time.time() - started) / 60
    report = json.loads((capture / "fit_report.json").read_text())
    errors = [f["mean_px"] for f in report["frames"].values() if f["status"] == "ok"]
    figures["fit reprojection error px (mean, max)"] = (np.mean(errors), np.max(errors))
    vertex_error = [
        np.linalg.norm(
            align.apply(posed_vertices(capture, i, model))
            - posed_vertices(truth, to_truth[i], model),
            axis=-1,
        ).mean()
        for i in ids
    ]
    figures["fit vertex error mm (mean, max over frames)"] = (
        1e3 * np.mean(vertex_error),
        1e3 * np.max(vertex_error),
    )
    assert capture_main(["check", str(capture)]) == 0

    # The truth trains on the same frames with the same split.
    io.write_split(truth, [to_truth[i] for i in train_ids], [to_truth[i] for i in val_ids])
    return capture, truth, figures


def train_and_evaluate(capture: Path, folder: Path, steps: int, scale: int) -> dict[str, float]:
    """Trains gin/demo.gin on `capture` and evaluates it on its validation frames."""
    shutil.rmtree(folder, ignore_errors=True)
    exp = experiment.Experiment.create(
        folder,
        ["gin/demo.gin"],
        [
            f"TrainConfig.max_steps = {steps}",
            "TrainConfig.max_minutes = 0",
            "TrainConfig.val_every = 0",
            "TrainConfig.val_frames = 0",
            f"lr/ExponentialSchedule.num_steps = {steps}",
            f"DataConfig.scale = {scale}",
        ],
        data_dir=str(capture),
    )
    started = time.time()
    train.train(exp)
    state, step = exp.restore_or_init_state()
    result = evaluate.evaluate(exp, state, step, show_progress=False)["mean"]
    result["minutes"] = (time.time() - started) / 60
    exp.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="video frames are SIZE x SIZE")
    parser.add_argument(
        "--video_frames", type=int, default=40, help="frames of the synthetic video"
    )
    parser.add_argument("--steps", type=int, default=1000, help="training steps per capture")
    parser.add_argument("--scale", type=int, default=4, help="training image scale")
    parser.add_argument("--noise_px", type=float, default=1.0, help="landmark noise (pixels)")
    parser.add_argument("--out", default="bench_out/pipeline", help="working folder")
    args = parser.parse_args()
    out = Path(args.out)
    capture, truth, figures = make_inputs(out, args.size, args.video_frames, args.noise_px)
    print(
        f"\n## capture pipeline: {args.video_frames} frames of {args.size}x{args.size} "
        f"(devices: {jax.device_count()})"
    )
    for name, value in figures.items():
        text = (
            ", ".join(f"{v:.3f}" for v in value)
            if isinstance(value, tuple)
            else (f"{value:.3f}" if isinstance(value, float) else value)
        )
        print(f"- {name}: {text}")
    keys = ["psnr", "psnr_face", "psnr_outside", "ssim", "minutes"]
    print(f"\n{args.steps} steps of gin/demo.gin at scale {args.scale}, same frames and split:\n")
    print("| capture | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for name, folder in (
        ("ground truth (synthetic)", truth),
        ("pipeline (video -> frames -> cameras -> fit)", capture),
    ):
        row = train_and_evaluate(folder, out / "exp" / folder.name, args.steps, args.scale)
        print(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
