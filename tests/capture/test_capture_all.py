# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.capture all`: the steps in one command, resumable.

A 5-frame 64x48 video, cameras from a COLMAP text model written by hand (no SfM), landmarks
given as the procedural head's projected landmarks (no detector) and a 4-step fit keep it
fast. The same arguments go once through the steps one by one and once through `all`; the
other tests work on copies of `all`'s capture.
"""

import contextlib
import io
import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import mediapy
import numpy as np
import pytest
from capture_util import tree_digest, write_colmap_text_model

from flamenerf.capture import __main__ as capture_main
from flamenerf.capture import check, pipeline
from flamenerf.geometry.camera import look_at
from flamenerf.io.media import ffmpeg_path
from flamenerf.synthetic import head

WIDTH, HEIGHT, NUM_FRAMES = 64, 48, 5
IDS = [f"{i:06d}" for i in range(NUM_FRAMES)]  # `frames` names frames by their number
TARGET = np.array([0.0, 0.0, 0.08])  # about the procedural head's landmark centroid


def run_capture(*args):
    """`python -m flamenerf.capture ARGS` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = capture_main.main([str(a) for a in args])
        except SystemExit as done:  # --help and argparse's refusals
            code = done.code
    return code, out.getvalue(), err.getvalue()


def files(root):
    """{relative path: bytes} of every file under root but pipeline.json."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != pipeline.RECORD
    }


def record_steps(capture):
    return [s["step"] for s in json.loads((capture / pipeline.RECORD).read_text())["steps"]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The video, a COLMAP model of its cameras, the landmarks and the FLAME model."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    texture = np.kron(
        rng.uniform(0, 255, (HEIGHT // 4, WIDTH // 4 + NUM_FRAMES, 3)), np.ones((4, 4, 1))
    )
    video = [
        np.round(texture[:, 4 * n : 4 * n + WIDTH]).astype(np.uint8) for n in range(NUM_FRAMES)
    ]
    assert ffmpeg_path() is not None
    mediapy.write_video(root / "me.mp4", np.stack(video), fps=10, qp=0)
    cameras = [
        look_at(
            TARGET + 0.5 * np.array([np.sin(a), 0.1, np.cos(a)]),
            TARGET,
            np.array([0.0, 1.0, 0.0]),
            focal_length=80.0,
            image_size=(WIDTH, HEIGHT),
        )
        for a in np.linspace(-0.4, 0.4, NUM_FRAMES)
    ]
    points = TARGET + rng.uniform(-0.1, 0.1, (100, 3))
    write_colmap_text_model(root / "sparse", cameras, [f"{i}.png" for i in IDS], points)
    with np.load(head.default_head_path()) as model:  # its landmarks at rest, by hand
        corners = model["v_template"][model["f"][model["lmk_faces_idx"]]]  # (51, 3, 3)
        landmarks = np.einsum("lkc,lk->lc", corners, model["lmk_bary_coords"])
    (root / "landmarks").mkdir()
    for frame_id, camera in zip(IDS, cameras, strict=True):
        entry = {
            "layout": "model",
            "image_size": [WIDTH, HEIGHT],
            "points": camera.project(landmarks).tolist(),
            "source": "the procedural head's landmarks, projected",
        }
        (root / "landmarks" / f"{frame_id}.json").write_text(json.dumps(entry))
    return {
        "video": root / "me.mp4",
        "sparse": root / "sparse",
        "landmarks": root / "landmarks",
        "flame": head.default_head_path(),
    }


def all_args(inputs, capture, *extra):
    return [
        "all",
        inputs["video"],
        "--out",
        capture,
        "--max_frames",
        "5",
        "--val_every",
        "5",
        "--colmap_model",
        inputs["sparse"],
        "--landmarks_from",
        inputs["landmarks"],
        "--flame_model",
        inputs["flame"],
        "--steps",
        "4",
        *extra,
    ]


@pytest.fixture(scope="module")
def captures(inputs, tmp_path_factory):
    """(the steps one by one, `all`, `all`'s stdout and stderr): the same folder name."""
    root = tmp_path_factory.mktemp("captures")
    capture = root / "cap"
    steps = [
        ["frames", inputs["video"], "--out", capture, "--max_frames", "5", "--val_every", "5"],
        ["cameras", capture, "--colmap_model", inputs["sparse"]],
        ["fit", capture, "--landmarks_from", inputs["landmarks"], "--flame_model", inputs["flame"]]
        + ["--steps", "4"],
        ["check", capture],
    ]
    for step in steps:
        code, _, err = run_capture(*step)
        assert code == 0, err
    by_steps = capture.rename(root / "steps")
    code, out, err = run_capture(*all_args(inputs, capture))
    assert code == 0, err
    return by_steps, capture, out, err


def test_all_writes_what_the_steps_write(captures, inputs):
    by_steps, by_all, out, err = captures
    assert files(by_all) == files(by_steps)
    assert record_steps(by_all) == ["frames", "cameras", "fit", "check"]
    # Each step ran with its own options only, and printed what it prints alone.
    assert f"[2/4] cameras: python -m flamenerf.capture cameras {by_all} --colmap_model " in out
    fit_line = next(line for line in out.splitlines() if line.startswith("[3/4] fit: "))
    assert shlex.split(fit_line)[6:] == [
        str(by_all),
        "--landmarks_from",
        str(inputs["landmarks"]),
        "--flame_model",
        str(inputs["flame"]),
        "--steps",
        "4",
    ]
    for said in ("kept 5 of 5 frames", "5 of 5 frames registered", "wrote flame/", "check.json"):
        assert said in out
    assert "all: check" in err and "4/4" in err  # the outer progress bar


def test_the_train_command(captures, inputs):
    import flamenerf.train

    _, by_all, out, _ = captures
    line = out.strip().splitlines()[-1]
    command = shlex.split(line)
    assert command[:3] == ["python", "-m", "flamenerf.train"]
    args = flamenerf.train.parse_args(command[3:])
    assert args.gin_configs == ["gin/demo.gin"] and args.base_folder == "exp/cap"
    assert args.data_dir == str(by_all) and args.flame_model == str(inputs["flame"])
    assert args.gin_bindings == []  # 64x48 frames train at full size
    assert pipeline.train_scale((1920, 1080), [1, 2, 4]) == 4
    assert pipeline.train_scale((1000, 800), [1, 2, 4]) == 2
    assert pipeline.train_scale((4000, 3000), [1, 2]) == 2  # the smallest written
    assert pipeline.train_scale((512, 288), [1, 2, 4]) == 1


def test_a_second_run_skips_every_step(captures, inputs, tmp_path):
    _, by_all, _, _ = captures
    capture = shutil.copytree(by_all, tmp_path / "cap")
    before = tree_digest(capture)
    code, out, err = run_capture(*all_args(inputs, capture))
    assert code == 0, err
    assert out.count(": skipped (done with these options and inputs") == 4
    assert tree_digest(capture) == before  # nothing written, pipeline.json included
    assert "python -m flamenerf.train" in out


def test_a_changed_option_or_deleted_output_reruns_its_step(captures, inputs, tmp_path):
    _, by_all, _, _ = captures
    capture = shutil.copytree(by_all, tmp_path / "cap")
    expected = files(capture)
    # frames.png deleted: frames runs again, writes the same files, so the rest is skipped.
    (capture / "frames.png").unlink()
    code, out, err = run_capture(*all_args(inputs, capture))
    assert code == 0, err
    assert "[1/4] frames: python -m flamenerf.capture frames" in out
    assert [line.split(":")[0] for line in out.splitlines() if ": skipped" in line] == [
        "[2/4] cameras",
        "[3/4] fit",
        "[4/4] check",
    ]
    assert files(capture) == expected
    # A check option changed: only check runs.
    code, out, err = run_capture(*all_args(inputs, capture, "--mad_k", "4"))
    assert code == 0, err
    assert out.count(": skipped") == 3 and "[4/4] check: python" in out and "--mad_k 4" in out
    # An input changed (the COLMAP model): cameras and everything after it run again.
    shutil.copytree(inputs["sparse"], tmp_path / "sparse")
    args = all_args(inputs, capture, "--mad_k", "4")
    args[args.index("--colmap_model") + 1] = tmp_path / "sparse"
    (tmp_path / "sparse" / "points3D.txt").write_text(
        (tmp_path / "sparse" / "points3D.txt").read_text().replace(" 128 128 128", " 1 1 1")
    )
    code, out, err = run_capture(*args)
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines() if ": skipped" in line] == [
        "[1/4] frames"
    ]


def test_a_failing_step_stops_the_pipeline(captures, inputs, tmp_path):
    _, by_all, _, _ = captures
    capture = shutil.copytree(by_all, tmp_path / "cap")
    alone = shutil.copytree(by_all, tmp_path / "alone")
    before = files(capture)
    code, out, err = run_capture(*all_args(inputs, capture, "--num_shape", "999"))
    fit_alone = run_capture(
        "fit", alone, "--landmarks_from", inputs["landmarks"], "--num_shape", "999"
    )
    assert fit_alone[0] == code == 2
    assert err.splitlines()[-1] == fit_alone[2].strip().replace(str(alone), str(capture))
    assert err.splitlines()[-1].startswith("error: --num_shape 999: expected 0..")
    assert "[3/4] fit: python" in out and "[4/4] check" not in out
    assert "python -m flamenerf.train" not in out
    assert files(capture) == before  # fit refused before writing
    assert record_steps(capture) == ["frames", "cameras"]  # fit's record went first


def test_a_checking_step_passes_its_exit_code(captures, inputs, tmp_path, monkeypatch):
    _, by_all, _, _ = captures
    capture = shutil.copytree(by_all, tmp_path / "cap")
    (capture / "check.png").unlink()

    def finds_problems(args):
        print(f"{args.capture}: the capture is invalid:", file=sys.stderr)
        return 1

    monkeypatch.setattr(check, "run", finds_problems)
    code, out, err = run_capture(*all_args(inputs, capture))
    assert code == 1 and "the capture is invalid" in err
    assert "stopped at check (exit code 1)" in out and "flamenerf.train" not in out


def test_from_runs_import_flame_instead_of_fit(captures, inputs, tmp_path, monkeypatch):
    from flamenerf.capture.trackers import command

    _, by_all, _, _ = captures
    capture = shutil.copytree(by_all, tmp_path / "cap")
    seen = []
    monkeypatch.setattr(command, "run", lambda args: seen.append(args) or 0)
    args = all_args(inputs, capture)
    for flag in ("--landmarks_from", "--steps"):  # fit's options are refused with --from
        del args[args.index(flag) : args.index(flag) + 2]
    code, out, err = run_capture(*args, "--from", "vhap", tmp_path, "--frame_offset", "2")
    assert code == 0, err
    assert "[3/4] import-flame: python -m flamenerf.capture import-flame" in out
    (given,) = seen
    assert (given.capture, given.tracker, given.path) == (str(capture), "vhap", str(tmp_path))
    assert given.frame_offset == 2 and given.flame_model == str(inputs["flame"])
    assert "[3/4] fit" not in out and "[4/4] check: python" in out  # check runs after it


def test_refusals_write_nothing(inputs, tmp_path):
    capture = tmp_path / "cap"
    # A missing video: the frames step's own error.
    args = all_args(inputs, capture)
    args[1] = tmp_path / "no.mp4"
    code, out, err = run_capture(*args)
    alone = run_capture("frames", tmp_path / "no.mp4", "--out", capture)
    assert code == alone[0] == 2 and err.strip().endswith(alone[2].strip())
    assert "no.mp4: video file not found" in err and "stopped at frames (exit code 2)" in out
    # Options of a step that does not run; no FLAME model; an unknown tracker.
    code, _, err = run_capture(*all_args(inputs, capture, "--identity", "id.npy"))
    assert code == 2 and "--identity: an option of import-flame, which does not run" in err
    args = all_args(inputs, capture)
    del args[args.index("--flame_model") : args.index("--flame_model") + 2]
    code, _, err = run_capture(*args)
    assert code == 2 and "--flame_model: fit needs a FLAME model" in err
    code, _, err = run_capture("all", inputs["video"], "--out", capture, "--from", "nope", "x")
    assert code == 2 and "--from nope: expected a tracker" in err
    assert not capture.exists()


def test_help_lists_every_step_option(capsys):
    code, out, _ = run_capture("all", "--help")
    assert code == 0 and "usage: python -m flamenerf.capture all" in out
    offered = set(re.findall(r"(?<![\w-])--\w+", out))
    for step, module in pipeline.MODULES.items():
        assert capture_main.STEPS[step] == module.__name__  # the same registry
        code, text, _ = run_capture(step, "--help")
        assert code == 0
        for flag in set(re.findall(r"(?<![\w-])--\w+", text)) - {"--help"}:
            flag = pipeline.RENAMED.get((step, flag), flag)
            assert flag in offered, (step, flag)
    assert "--check_out" in offered and "--from TRACKER PATH" in out
    for title in ("frames options", "cameras options", "fit options", "check options"):
        assert title in out
    # Declared once, by the steps: the pipeline declares only its own --from.
    source = Path(pipeline.__file__).read_text()
    assert re.findall(r"add_argument\(\s*\"([^\"]+)\"", source) == ["--from"]
