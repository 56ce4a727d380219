# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Experiment and capture folders at gs:// URLs, as a pod user runs the commands.

A tiny capture is uploaded to gs://BUCKET/capture on a Google Cloud Storage server on this
machine (tests/remote_util.py) and deleted locally; `train`, `eval`, `render` and `plots` then
run with `--base_folder gs://BUCKET/exp`. What they wrote is checked in the bucket with a
gcsfs client of the test's own, not through flamenerf; the caches derived from the capture
(its pack, the guide grids) are local. Nothing named `gs:` may appear in the working directory.
"""

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import remote_util
from capture_util import write_capture
from PIL import Image

from flamenerf import eval as eval_lib
from flamenerf import plots, render, train
from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import packing
from flamenerf.io import paths

TINY = str(Path(__file__).parent / "gin" / "tiny.gin")
gcs_server, gcs_bucket = remote_util.gcs_server, remote_util.gcs_bucket  # fixtures


def train_args(exp, capture, steps):
    return [
        "--gin_configs",
        TINY,
        "--gin_bindings",
        f"TrainConfig.max_steps = {steps}",
        "TrainConfig.checkpoint_every = 2",
        "TrainConfig.log_every = 2",
        "TrainConfig.val_frames = 1",
        "DataConfig.pack = True",  # the pack and the guide grids: local caches of the capture
        "GuideConfig.enabled = True",
        "GuideConfig.resolution = 8",
        "--base_folder",
        exp,
        "--data_dir",
        capture,
    ]


def metrics(fs, exp):
    lines = fs.cat(f"{exp}/metrics.jsonl").decode().splitlines()
    return [json.loads(line) for line in lines]


def event_tags(fs, folder):
    """{tag: [step, ...]} of the TensorBoard event files in the bucket folder."""
    from tensorboardX.proto import event_pb2

    tags = {}
    for name in fs.ls(folder):
        data, position = fs.cat(name), 0
        while position < len(data):  # TFRecord framing: length, its CRC, the event, its CRC
            (length,) = struct.unpack("<Q", data[position : position + 8])
            event = event_pb2.Event.FromString(data[position + 12 : position + 12 + length])
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
            position += 12 + length + 4
    return tags


def png(fs, name):
    return np.asarray(Image.open(io.BytesIO(fs.cat(name))))


@pytest.fixture
def remote_capture(gcs_server, gcs_bucket, tmp_path):
    """gs://BUCKET/capture (6 train + 2 val frames, 16x12, masks), with no local copy."""
    local = write_capture(
        tmp_path / "upload", num_train=6, num_val=2, width=16, height=12, masks=True
    )
    gcs_server.fs.put(f"{local}/", f"{gcs_bucket}/capture", recursive=True)
    shutil.rmtree(local)
    assert gcs_server.fs.exists(f"{gcs_bucket}/capture/rgb/1x/v01.png")
    return f"gs://{gcs_bucket}/capture"


def test_train_eval_render_with_gs_folders(
    gcs_server, gcs_bucket, remote_capture, tmp_path, monkeypatch, capsys
):
    fs, exp = gcs_server.fs, f"{gcs_bucket}/exp"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    assert train.main(train_args(f"gs://{exp}", remote_capture, 4)) == 0
    config = fs.cat(f"{exp}/config.gin").decode()
    assert f'DataConfig.capture = "{remote_capture}"' in config
    assert f'DataConfig.flame_model = "{remote_capture}/flame_model.npz"' in config
    assert fs.exists(f"{exp}/checkpoints/4") and fs.exists(f"{exp}/checkpoints/2")
    records = metrics(fs, exp)
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
    assert [r["step"] for r in records if r["split"] == "val"] == [4]
    assert all(np.isfinite(r["loss"]) for r in records if r["split"] == "train")
    tags = event_tags(fs, f"{exp}/tensorboard")
    assert tags["train/loss"] == [2, 4] and tags["val/psnr"] == [4]
    assert tags["val/v00/prediction"] == [4]  # images too
    capture = capture_lib.load_capture(remote_capture)  # caches derived from it: local
    assert (paths.cache_root() / "packed" / packing.capture_key(capture)).is_dir()
    assert list((paths.cache_root() / "guides").glob("*.npz"))

    # Running again with more steps resumes from the checkpoint in the bucket.
    capsys.readouterr()
    assert train.main(train_args(f"gs://{exp}", remote_capture, 6)) == 0
    assert f"gs://{exp}: resuming from step 4" in capsys.readouterr().out
    assert fs.exists(f"{exp}/checkpoints/6")
    steps = [r["step"] for r in metrics(fs, exp) if r["split"] == "train"]
    assert steps == [2, 4, 6]

    # eval and render read the experiment from the bucket (its config.gin names the capture).
    table = f"gs://{gcs_bucket}/tables/table.csv"
    assert eval_lib.main(["--base_folder", f"gs://{exp}", "--table_csv", table]) == 0
    out = f"{exp}/eval/step_6"
    report = json.loads(fs.cat(f"{out}/metrics.json"))
    assert report["step"] == 6 and report["checkpoint"] == f"gs://{exp}/checkpoints/6"
    assert sorted(report["frames"]) == ["v00", "v01"] and np.isfinite(report["mean"]["psnr"])
    assert png(fs, f"{out}/v01_prediction.png").shape == (12, 16, 3)
    page = fs.cat(f"{out}/index.html").decode()
    assert 'src="v00_prediction.png"' in page and 'src="v01_disent.png"' in page
    csv_text = fs.cat(f"{gcs_bucket}/tables/table.csv").decode()
    assert csv_text.startswith("experiment,step,") and f"gs://{exp},6," in csv_text
    assert event_tags(fs, f"{exp}/tensorboard")["eval/psnr"] == [6]

    assert render.main(["--base_folder", f"gs://{exp}", "path", "--orbit", "3", "--depth"]) == 0
    renders = f"{exp}/renders/path"
    info = json.loads(fs.cat(f"{renders}/render.json"))
    assert info["base_folder"] == f"gs://{exp}" and len(info["frames"]) == 3
    for stream in ("frames", "depth"):
        names = sorted(n.split("/")[-1] for n in fs.ls(f"{renders}/{stream}"))
        assert names == ["00000.png", "00001.png", "00002.png"]
    video = info["video"]  # video.mp4 (video.gif when no ffmpeg works)
    assert video in ("video.mp4", "video.gif") and fs.size(f"{renders}/{video}") > 0
    assert fs.size(f"{renders}/{info['depth_video']}") > 0

    assert plots.main(["--base_folder", f"gs://{exp}"]) == 0
    assert png(fs, f"{exp}/curves.png").ndim == 3

    local = [p.name for p in work.rglob("*")]
    assert not [n for n in local if n.endswith(":")], local  # no local "gs:" folder
    assert not Path("gs:").exists() and not (tmp_path / "gs:").exists()


@pytest.mark.parametrize(
    "folder, data_dir, message",
    [
        ("gs:/BUCKET/exp", None, "gs:/BUCKET/exp: looks like a URL"),
        ("s3://BUCKET/exp", None, "a local path or a gs:// URL"),
        ("gs://no-such-bucket/exp", None, "the bucket gs://no-such-bucket does not exist"),
        ("gs://BUCKET/exp", "gcs://BUCKET/capture", "unknown file system gcs://"),
        ("gs://BUCKET/exp", "gs://BUCKET/nothing", "gs://BUCKET/nothing: capture folder not"),
    ],
)
def test_bad_urls_are_one_line_errors(
    gcs_bucket, tmp_path, monkeypatch, capsys, folder, data_dir, message
):
    monkeypatch.chdir(tmp_path)
    folder, message = folder.replace("BUCKET", gcs_bucket), message.replace("BUCKET", gcs_bucket)
    args = train_args(folder, (data_dir or "gs://BUCKET/capture").replace("BUCKET", gcs_bucket), 2)
    assert train.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written here, no "gs:" folder
    for command in (eval_lib, plots):
        assert command.main(["--base_folder", "gs:/x/exp"]) == 2
    assert "gs:/x/exp: looks like a URL" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
