# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The render command line: subcommands write frames, a video and render.json; bad arguments
give one line naming the flag; --help documents every flag.

Uses test_eval's tiny trained experiment (warp off, silhouette spatial prior) and, for the
head pose, its copy rendered through the FLAME guide (`views_util.guided_folder`). The views
and renders themselves are tested in test_views_*.py.
"""

import json

import numpy as np
import pytest
import views_util
from PIL import Image
from test_eval import tiny_experiment
from views_util import CODE, run_cli, write_params

from flamenerf import render
from flamenerf.views import paths


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    return tiny_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def driving_dir(tmp_path_factory):
    return views_util.write_driving(tmp_path_factory.mktemp("driving"))


@pytest.fixture(scope="module")
def guided_folder(trained, tmp_path_factory):
    return views_util.guided_folder(trained, tmp_path_factory.mktemp("guided"))


@pytest.mark.parametrize(
    "args, frames",
    [
        (["path", "--orbit", "2", "--expression_frame", "t01"], 2),
        (["expression", "--camera_frame", "v00", "--to_frame", "t02", "--num_frames", "2"], 2),
        (["reanimate", "--flame_dir", "DRIVING"], 2),
    ],
)
def test_subcommands_write_frames_and_a_video(trained, driving_dir, tmp_path, capsys, args, frames):
    args = [str(driving_dir) if a == "DRIVING" else a for a in args]
    assert run_cli(trained, tmp_path / "out", *args) == 0, capsys.readouterr().err
    written = sorted((tmp_path / "out" / "frames").glob("*.png"))
    assert [p.name for p in written] == [f"{i:05d}.png" for i in range(frames)]
    assert np.asarray(Image.open(written[0])).shape == (12, 16, 3)
    info = json.loads((tmp_path / "out" / "render.json").read_text())
    assert (tmp_path / "out" / info["video"]).stat().st_size > 0
    assert info["command"] == args[0] and len(info["frames"]) == frames


@pytest.mark.parametrize("where", ["before", "after"])  # the flag before or after the subcommand
def test_depth_and_silhouette_videos_beside_the_rgb_one(trained, tmp_path, capsys, where):
    from flamenerf import render

    flags = ["--depth", "--silhouette"]
    command = ["path", "--orbit", "2", "--expression_frame", "t01"]
    args = flags + command if where == "before" else command + flags
    out = tmp_path / "out"
    assert render.main(["--base_folder", str(trained), *args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    info = json.loads((out / "render.json").read_text())
    for name in ("depth", "silhouette"):
        written = sorted((out / name).glob("*.png"))
        assert [p.name for p in written] == ["00000.png", "00001.png"]
        assert np.asarray(Image.open(written[0])).shape == (12, 16, 3)
        video = out / info[f"{name}_video"]
        assert video.stem == name and video.stat().st_size > 0 and video.name in printed
    depth = np.asarray(Image.open(out / "depth" / "00000.png"))
    rgb = np.asarray(Image.open(out / "frames" / "00000.png"))
    assert not np.array_equal(depth, rgb)


def test_reanimate_cli_names_a_file_with_too_many_coefficients(trained, tmp_path, capsys):
    write_params(tmp_path / "drive" / "000.json", expression=[0.1, 0.2])
    write_params(tmp_path / "drive" / "001.json", expression=[0.1, 0.2, 0.3, 0.4])
    code = run_cli(trained, tmp_path / "out", "reanimate", "--flame_dir", str(tmp_path / "drive"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(tmp_path / "drive" / "001.json") in err and "'expression' has 4" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["expression", "--camera_frame", "nope", "--to_frame", "t01"], "--camera_frame nope"),
        (["expression", "--camera_frame", "t00"], "either --to_frame"),
        (["expression", "--camera_frame", "t00", "--coefficient", "3"], "--coefficient 3"),
        (["path", "--path", "nowhere"], "--path nowhere"),
        (["reanimate", "--flame_dir", "missing"], "missing: folder of FLAME"),
    ],
)
def test_bad_arguments_error_in_one_line(trained, tmp_path, capsys, args, message):
    assert run_cli(trained, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_help_documents_every_flag(capsys):
    flags = {
        "path": [
            "--path",
            "--orbit",
            "--orbit_degrees",
            "--expression_frame",
            "--head_yaw",
            "--head_pitch",
            "--num_frames",
        ],
        "expression": ["--camera_frame", "--to_frame", "--coefficient", "--range", "--num_frames"],
        "reanimate": ["--flame_dir", "--camera", "--relative", "--subject_neutral", "--head_pose"],
    }
    defaults = {
        "path": [f"(default {paths.DEFAULT_HEAD_SWEEP_FRAMES})", "default: no sweep"],
        "expression": [],
        "reanimate": ["code|driving", "(default: code)"],
    }
    common = ["--base_folder", "--out", "--fps", "--code_frame", "--checkpoint", "--scale"]
    common += ["--depth", "--silhouette"]
    for command, names in flags.items():
        with pytest.raises(SystemExit) as exit_info:
            render.parse_args([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for name in names + common:
            assert name in text, (command, name)
        for default in defaults[command]:
            assert default in " ".join(text.split()), (command, default)


# ------------------------------------------------------------------------------------------
# Head pose: driven by the parameters, swept before a fixed camera.


def test_head_sweep_writes_the_swept_frames(guided_folder, tmp_path):
    out = tmp_path / "sweep"
    args = ["path", "--head_yaw", "-10", "10", "--num_frames", "4", "--expression_frame", CODE]
    assert run_cli(guided_folder, out, *args) == 0
    written = sorted((out / "frames").glob("*.png"))
    assert [p.name for p in written] == [f"{i:05d}.png" for i in range(4)]
    info = json.loads((out / "render.json").read_text())
    assert [f["head_yaw"] for f in info["frames"]] == pytest.approx([-10, -10 / 3, 10 / 3, 10])
    assert [f["head_pitch"] for f in info["frames"]] == [0.0] * 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["reanimate", "--flame_dir", "x", "--head_pose", "sideways"], "--head_pose sideways"),
        (["path", "--head_yaw", "0", "10", "--orbit", "3"], "not with --path or --orbit"),
        (["path", "--num_frames", "3"], "--num_frames 3: goes with --head_yaw"),
        (
            ["path", "--head_pitch", "0", "10", "--num_frames", "0"],
            "--num_frames 0: expected at least",
        ),
    ],
)
def test_bad_head_pose_arguments_error_in_one_line(guided_folder, tmp_path, capsys, args, message):
    assert run_cli(guided_folder, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args", [["path", "--head_yaw", "0", "10"], ["reanimate", "--head_pose", "driving"]]
)
def test_head_motion_needs_the_guides_rigid_part(trained, driving_dir, tmp_path, capsys, args):
    args = args + (["--flame_dir", str(driving_dir)] if args[0] == "reanimate" else [])
    assert run_cli(trained, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot move the head" in err
    assert "GuideConfig.enabled = False" in err and str(trained / "config.gin") in err


def test_every_subcommand_flag_reaches_its_library_call():
    """render passes each subcommand's own flags to its view builder by parameter name: a
    flag without a parameter of that name would be dropped silently, and a common flag other
    than --code_frame (--out, --scale, ...) must never land in a builder."""
    import argparse
    import inspect

    common = argparse.ArgumentParser()
    render._common_flags(common, suppress=False)
    common_dests = {action.dest for action in common._actions} - {"help"}
    for name, (_, _, add_flags, build) in render._SUBCOMMANDS.items():
        parser = argparse.ArgumentParser()
        add_flags(parser)
        own = {action.dest for action in parser._actions} - {"help"}
        parameters = set(inspect.signature(build).parameters) - {"exp", "show_progress"}
        assert own <= parameters, (name, own - parameters)  # no flag is dropped
        # the one common flag a builder takes is --code_frame; none of the others reach it
        assert common_dests & parameters == {"code_frame"}, name
        assert parameters <= own | {"code_frame"}, (name, parameters - own)
