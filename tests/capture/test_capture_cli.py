# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`python -m flamenerf.capture`: every step is listed, and bad input exits 2 with a message.

Two checks run the command as a process (`--help`, which imports every step, and a refusal's
exit code 2); the others call its `main` in-process, which is what that process runs, so that
the module does not pay a Python and JAX start-up per check.
"""

import json
import subprocess
import sys

import pytest
from capture_util import run_capture

from flamenerf.capture import __main__ as capture_main


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "flamenerf.capture", *args], capture_output=True, text=True
    )


def test_help_lists_every_step():
    done = run("--help")
    assert done.returncode == 0
    for step in ("frames", "cameras", "import-flame", "fit", "check"):
        assert step in done.stdout


@pytest.mark.parametrize("step", capture_main.STEPS)
def test_every_step_has_help(step, capsys):
    code, out, _ = run_capture(capsys, step, "--help")
    assert code == 0 and "usage: python -m flamenerf.capture " + step in out


def test_a_missing_video_is_a_clear_error(tmp_path):
    done = run("frames", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "cap"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "nope.mp4" in done.stderr
    assert not (tmp_path / "cap").exists()  # nothing written on refusal


def test_a_capture_without_cameras_is_refused_by_fit(tmp_path, capsys):
    (tmp_path / "cap").mkdir()
    code, _, err = run_capture(capsys, "fit", str(tmp_path / "cap"))
    assert code == 2 and "error: " in err and "cap" in err


def test_fit_refuses_a_scene_without_the_normalisation(tmp_path, capsys):
    from capture_util import write_capture

    cap = write_capture(tmp_path / "cap", num_train=3, num_val=0, width=8, height=6)
    scene = json.loads((cap / "scene.json").read_text())
    del scene["near"]
    (cap / "scene.json").write_text(json.dumps(scene))
    code, _, err = run_capture(capsys, "fit", str(cap))
    assert code == 2
    assert "scene.json: missing field(s) ['near'] (run the `cameras` step first)" in err


def test_cameras_names_an_unreadable_frame(tmp_path, capsys):
    from capture_util import write_capture

    cap = write_capture(tmp_path / "cap", num_train=3, num_val=0, width=8, height=6)
    broken = sorted((cap / "rgb" / "1x").glob("*.png"))[0]
    broken.write_bytes(b"not a png")
    code, _, err = run_capture(capsys, "cameras", str(cap))
    assert code == 2 and f"{broken}: cannot read the image" in err
