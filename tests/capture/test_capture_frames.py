# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.capture frames`: sharpest frame per window, split, downsamples, errors."""

import argparse
import json
import re

import mediapy
import numpy as np
import pytest
from capture_util import tree_digest
from PIL import Image

from flamenerf.capture import frames
from flamenerf.capture.io import StepError
from flamenerf.io.media import ffmpeg_path

SIZE = 64
NUM_FRAMES = 12
MAX_FRAMES = 4  # windows of 3 frames
SHARP = [0, 5, 7, 11]  # the one sharp frame of each window; the others are blurred


def box_blur(image: np.ndarray, radius: int, passes: int = 3) -> np.ndarray:
    """(H, W, 3) float image -> repeatedly box-filtered (edges replicated), same shape."""
    k = 2 * radius + 1
    for _ in range(passes):
        padded = np.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
        rows = sum(padded[i : i + image.shape[0]] for i in range(k)) / k
        image = sum(rows[:, j : j + image.shape[1]] for j in range(k)) / k
    return image


def textured_frames() -> np.ndarray:
    """(NUM_FRAMES, SIZE, SIZE, 3) uint8: a drifting random texture, blurred except SHARP."""
    rng = np.random.default_rng(0)
    base = np.kron(
        rng.uniform(0.0, 1.0, (SIZE // 4 + NUM_FRAMES, SIZE // 4, 3)), np.ones((4, 4, 1))
    )
    video = []
    for n in range(NUM_FRAMES):
        image = base[4 * n : 4 * n + SIZE]  # the texture drifts up 4 pixels a frame
        if n not in SHARP:
            image = box_blur(image, radius=1 + n % 3)
        video.append(np.round(image * 255).astype(np.uint8))
    return np.stack(video)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    frames.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    assert ffmpeg_path() is not None
    path = tmp_path_factory.mktemp("video") / "blur.mp4"
    mediapy.write_video(path, textured_frames(), fps=10, qp=0)
    return path


def test_sharpness_orders_blur_levels():
    image = textured_frames()[0].astype(np.float64) / 255.0
    scores = [frames.sharpness(np.round(box_blur(image, r) * 255)) for r in (1, 2, 3)]
    assert frames.sharpness(np.round(image * 255)) > scores[0] > scores[1] > scores[2] > 0


def test_select_sharpest_windows():
    scores = np.array([1.0, 3.0, 2.0, 5.0, 5.0, 0.0, 1.0])
    # Windows [0 1 2] [3 4] [5 6]; a tie keeps the first.
    np.testing.assert_array_equal(frames.select_sharpest(scores, 3), [1, 3, 6])
    np.testing.assert_array_equal(frames.select_sharpest(scores, 10), np.arange(7))
    assert frames.frame_ids(np.array([3]), 20) == ["000003"]
    assert frames.frame_ids(np.array([3, 12]), 1_000_001) == ["0000003", "0000012"]
    assert frames.split_ids(["a", "b", "c", "d", "e"], 2) == (["a", "c", "e"], ["b", "d"])
    assert frames.split_ids(["a", "b"], 0) == (["a", "b"], [])


def test_downsample_scales():
    assert frames.scales_for((12, 6)) == [1, 2] and frames.scales_for((16, 8)) == [1, 2, 4]


def test_frames_keeps_the_sharp_frame_of_each_window(video, tmp_path, capsys):
    out = tmp_path / "capture"
    assert (
        frames.run(parse([str(video), "--out", str(out), "--max_frames", "4", "--val_every", "2"]))
        == 0
    )
    ids = [f"{i:06d}" for i in SHARP]
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["train_ids"] == [ids[0], ids[2]] and dataset["val_ids"] == [ids[1], ids[3]]
    assert dataset["count"] == 4 and dataset["num_exemplars"] == 2
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata[ids[1]]["warp_id"] == 0 and metadata[ids[3]]["warp_id"] == 1
    assert sorted(p.name for p in (out / "rgb" / "1x").iterdir()) == [f"{i}.png" for i in ids]
    for frame_id in ids:
        full = np.asarray(Image.open(out / "rgb" / "1x" / f"{frame_id}.png"))
        assert full.shape == (SIZE, SIZE, 3) and full.dtype == np.uint8
        for s in (2, 4):
            scaled = np.asarray(Image.open(out / "rgb" / f"{s}x" / f"{frame_id}.png"))
            blocks = full.reshape(SIZE // s, s, SIZE // s, s, 3).astype(np.float64)
            np.testing.assert_array_equal(scaled, np.round(blocks.mean(axis=(1, 3))))
    sheet = Image.open(out / "frames.png")
    assert sheet.format == "PNG" and sheet.width > 4 * 100
    assert "kept 4 of 12 frames" in capsys.readouterr().out


def test_rerun_is_idempotent_and_removes_stale_frames(video, tmp_path):
    out = tmp_path / "capture"
    frames.extract_frames(video, out, max_frames=4, val_every=2)
    first = tree_digest(out)
    frames.extract_frames(video, out, max_frames=4, val_every=2)
    assert tree_digest(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture"]  # nothing outside --out
    # Fewer windows: rgb/ holds exactly the new frames.
    frames.extract_frames(video, out, max_frames=2, val_every=0)
    kept = json.loads((out / "dataset.json").read_text())["ids"]
    assert len(kept) == 2 and kept[0] in {f"{i:06d}" for i in range(6)}
    for s in (1, 2, 4):
        assert sorted(p.stem for p in (out / "rgb" / f"{s}x").iterdir()) == kept


def test_bad_input_names_the_path(video, tmp_path):
    out = tmp_path / "capture"
    missing = tmp_path / "missing.mp4"
    with pytest.raises(StepError, match=re.escape(f"{missing}: video file not found")):
        frames.extract_frames(missing, out)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(StepError, match=re.escape(f"{text}: cannot be decoded as a video")):
        frames.extract_frames(text, out)
    with pytest.raises(StepError, match=re.escape(f"{tmp_path}: expected a video file")):
        frames.extract_frames(tmp_path, out)
    with pytest.raises(StepError, match=re.escape(f"{text}: --out must be a capture folder")):
        frames.extract_frames(video, text)
    with pytest.raises(StepError, match="--val_every 1"):
        frames.extract_frames(video, out, val_every=1)
    with pytest.raises(StepError, match="--max_frames 0"):
        frames.extract_frames(video, out, max_frames=0)
    assert not out.exists()
