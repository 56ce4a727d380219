# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`flamenerf.capture.trackers.registry`: a registered tracker is a new `import-flame --from`."""

import json

import numpy as np
import pytest
from capture_util import run_capture, write_capture
from tracker_util import HEIGHT, IDS, WIDTH

from flamenerf.capture import trackers
from flamenerf.capture.io import StepError
from flamenerf.capture.trackers import registry
from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera, look_at

TOY_DOC = """A toy tracker, for `import-flame --from toy PATH`; PATH is

a JSON file {"NAME": [expression coefficients], ...}; every frame is seen by one
camera at (0, 0, 0.5) looking at the origin.
"""


def read_toy(path):
    """The toy tracker's reader: one frame per entry of the JSON file, one shared camera."""
    camera = look_at(
        [0.0, 0.0, 0.5],
        [0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        focal_length=10.0,
        image_size=(WIDTH, HEIGHT),
    )
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise StepError(f"{path}: expected an object of expression lists")
    frames = [
        trackers.TrackerFrame((name,), flame.FlameParams(expression=np.array(e, float)), camera)
        for name, e in raw.items()
    ]
    return trackers.Track(frames, notes=("toy: expression only",))


TOY = trackers.TrackerSpec(name="toy", title="Toy", doc=TOY_DOC, read=read_toy)


@pytest.fixture
def registry_copy(monkeypatch):
    """The registry as it is, restored after the test (registrations do not leak)."""
    monkeypatch.setattr(registry, "TRACKERS", dict(registry.TRACKERS))


def test_the_built_in_trackers_in_help_order():
    assert tuple(trackers.TRACKERS) == ("vhap", "metrical", "insta", "imavatar", "deca")
    for name, spec in trackers.TRACKERS.items():
        assert spec.name == name and spec.path_help and spec.read.__name__ == f"read_{name}"


def test_a_registered_toy_tracker_is_imported_by_the_command(tmp_path, capsys, registry_copy):
    root = write_capture(tmp_path / "cap")
    for path in (root / "camera").iterdir():
        path.unlink()
    expressions = {frame_id: [0.1 * k, -0.2, 0.3, 0.0] for k, frame_id in enumerate(IDS)}
    (tmp_path / "toy.json").write_text(json.dumps(expressions))
    argv = ["import-flame", str(root), "--from", "toy", str(tmp_path / "toy.json")]

    code, _, err = run_capture(capsys, *argv)
    assert code == 2 and "invalid choice: 'toy'" in err  # not a tracker yet

    assert trackers.register(TOY) is TOY
    code, out, _ = run_capture(capsys, "import-flame", "--help")
    assert code == 0 and "Toy)" in out and "the tracker: vhap, metrical" in out
    assert '  toy       a JSON file {"NAME": [expression coefficients], ...}; every' in out
    assert "\n            camera at (0, 0, 0.5) looking at the origin." in out

    code, out, _ = run_capture(capsys, *argv)
    assert code == 0 and "note: toy: expression only" in out
    for k, frame_id in enumerate(IDS):
        written = json.loads((root / "flame" / f"{frame_id}.json").read_text())
        np.testing.assert_allclose(written["expression"], [0.1 * k, -0.2, 0.3, 0.0])
        camera = Camera.from_json(root / "camera" / f"{frame_id}.json")
        np.testing.assert_allclose(camera.position, [0.0, 0.0, 0.5])
    to_world = json.loads((root / "scene.json").read_text())["flame"]["to_world"]
    assert to_world["scale"] == 1.0


def test_register_refuses_a_taken_or_blank_name(registry_copy):
    with pytest.raises(ValueError, match="'vhap': already registered"):
        trackers.register(registry.TRACKERS["vhap"])
    with pytest.raises(ValueError, match="without whitespace"):
        trackers.register(trackers.TrackerSpec(name="to y", title="", doc="", read=read_toy))
    assert "to y" not in registry.TRACKERS
