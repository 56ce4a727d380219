# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Tests of flamenerf.synthetic.generator (tiny captures) and flamenerf.synthetic.textures."""

import dataclasses
import json
import re
from pathlib import Path

import golden_util
import numpy as np
import pytest

from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import validate
from flamenerf.evaluation import distance as evaluation_distance
from flamenerf.geometry import flame, rasterize
from flamenerf.synthetic import generator as synthetic
from flamenerf.synthetic import head, textures

TINY = {"size": 16, "frames": 6, "val": 2, "seed": 0}
MOTION8 = {"size": 8, "frames": 3, "val": 1, "seed": 0}  # with the bare head_motion

# The part digests (sha256 per top-level entry, `golden_util.part_digests`: every byte, but
# the numbers of JSON files to golden_util.JSON_DIGITS significant digits) of TINY and
# MOTION8 and the default cache keys are in tests/golden/synthetic_capture.json. The options
# added after the version named (vrig, head motion magnitude, normalisation, expression
# appearance, head joint) at their defaults leave the capture unchanged. A change of the
# output needs a new GENERATOR_VERSION and `python tests/golden/update.py synthetic_capture`.


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "tiny"
    return synthetic.generate(out, **TINY, show_progress=False)


@pytest.fixture(scope="session")
def tiny_capture(tiny) -> capture_lib.Capture:
    return capture_lib.load_capture(tiny)


@pytest.fixture(scope="module")
def tiny_room(tmp_path_factory) -> Path:
    """TINY with the room normalisation."""
    out = tmp_path_factory.mktemp("synthetic_room") / "room"
    return synthetic.generate(out, **TINY, normalisation="room", show_progress=False)


@pytest.fixture(scope="module")
def tiny_vrig(tmp_path_factory) -> Path:
    """TINY with 3 second-phone validation frames."""
    out = tmp_path_factory.mktemp("synthetic_vrig") / "vrig"
    return synthetic.generate(out, **TINY, vrig=3, show_progress=False)


def _golden(name: str) -> dict[str, str]:
    """An entry ("keys") of the golden file, checked against the generator's versions."""
    return golden_util.capture_golden()[name]


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _read(path: Path):
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# The capture on disk.


def test_capture_loads_at_every_written_scale(tiny, tiny_capture, capsys):
    assert tiny_capture.num_train == 6 and len(tiny_capture.val_ids) == 2
    assert tiny_capture.image(tiny_capture.train_ids[0]).shape == (16, 16, 3)
    assert tiny_capture.scene.num_expression == 10
    assert len(tiny_capture.flame_params[tiny_capture.train_ids[0]].expression) == 10
    # 16 px: 2x (8 px) is written, 4x (4 px) is not.
    assert (tiny / "rgb" / "2x").is_dir() and (tiny / "mask" / "2x").is_dir()
    assert not (tiny / "rgb" / "4x").exists()
    half = capture_lib.load_capture(tiny, scale=2)
    assert half.image(half.train_ids[0]).shape == (8, 8, 3)
    assert validate.main([str(tiny)]) == 0
    assert validate.main([str(tiny), "--scale", "2"]) == 0
    assert "OK" in capsys.readouterr().out
    assert len(tiny_capture.camera_path("orbit")) == synthetic.ORBIT_FRAMES
    # The capture is self-contained.
    scene = _read(tiny / "scene.json")
    assert scene["flame"]["model"] == "flame_model.npz"
    assert tiny_capture.scene.flame_model == tiny / "flame_model.npz"


def test_scene_bounds_hold_the_geometry(tiny, tiny_capture):
    scene = tiny_capture.scene
    camera = tiny_capture.cameras[tiny_capture.train_ids[0]]
    vertices = tiny_capture.vertices(tiny_capture.train_ids[0])
    # The head lies well inside the unit ball and inside the bbox.
    assert np.linalg.norm(vertices, axis=-1).max() < 0.7
    assert np.all(vertices >= scene.bbox[0]) and np.all(vertices <= scene.bbox[1])
    distances = np.linalg.norm(vertices - camera.position, axis=-1)
    assert scene.near < distances.min() and distances.max() < scene.far
    wall_distance = (synthetic.WALL_Z - synthetic.SCENE_CENTER[2]) * scene.scale
    assert camera.position[2] - wall_distance < scene.far


def test_default_options_keep_the_golden_bytes_and_keys(tiny):
    """The new options at their defaults leave today's captures and cache keys unchanged."""
    golden_util.check_capture("tiny", tiny)
    assert synthetic.capture_key() == _golden("keys")["default"]
    assert synthetic.capture_key(head_motion=True) == _golden("keys")["motion"]
    assert synthetic.capture_key(head_motion=3.0) == _golden("keys")["motion"]
    defaults = {"vrig": 0, "normalisation": "head", "expression_appearance": False}
    assert synthetic.capture_key(**defaults) == _golden("keys")["default"]
    assert synthetic.capture_key(specular=False) == _golden("keys")["default"]
    specular = synthetic.capture_key(specular=True)
    assert specular != _golden("keys")["default"] and "-specular-" in specular
    with pytest.raises(ValueError, match="--specular"):
        synthetic.capture_key(specular="yes")


def test_same_arguments_give_identical_bytes_and_seeds_differ(tiny, tmp_path):
    again = synthetic.generate(tmp_path / "again", **TINY, show_progress=False)
    assert _files(again) == _files(tiny)
    other = synthetic.generate(tmp_path / "other", **{**TINY, "seed": 1}, show_progress=False)
    frame = "0000"
    for name in (f"rgb/1x/{frame}.png", f"flame/{frame}.json", f"camera/{frame}.json"):
        assert (other / name).read_bytes() != (tiny / name).read_bytes(), name


@pytest.mark.parametrize("scale", [1, 2])
def test_masks_are_the_rasterised_flame_silhouette(tiny, scale):
    capture = capture_lib.load_capture(tiny, scale=scale)
    faces = np.asarray(capture.flame_model.faces)
    for frame_id in capture.ids:
        mask = capture.mask(frame_id)
        expected = rasterize.silhouette(
            capture.vertices(frame_id), faces, capture.cameras[frame_id]
        )
        assert mask.any()
        assert np.count_nonzero(mask != expected) <= 2, frame_id


def test_validation_frames_are_held_out(tiny, tiny_capture):
    train, val = tiny_capture.train_ids, tiny_capture.val_ids
    assert not set(train) & set(val)
    train_conditions = np.stack([tiny_capture.condition(i) for i in train])
    train_positions = np.stack([tiny_capture.cameras[i].position for i in train])
    metadata = _read(tiny / "metadata.json")
    for i in val:
        assert np.all(np.abs(train_conditions - tiny_capture.condition(i)).max(axis=1) > 1e-3)
        assert np.all(np.linalg.norm(train_positions - tiny_capture.cameras[i].position, axis=1))
        # The code of the nearest training frame in time (ids are time indices).
        nearest = min(train, key=lambda t, i=i: (abs(int(t) - int(i)), int(t)))
        assert metadata[i]["warp_id"] == metadata[nearest]["warp_id"]
        assert metadata[i]["appearance_id"] == metadata[nearest]["appearance_id"]
    assert [metadata[i]["warp_id"] for i in train] == list(range(len(train)))
    assert sorted(int(i) for i in train + val) == list(range(len(train) + len(val)))


def test_expression_sequence_is_smooth_and_in_range():
    t = np.linspace(0.0, 1.0, 136)
    curves = synthetic.expression_curves(0, t, 10)
    assert curves.min() >= -0.5 and curves.max() <= 1.5
    assert curves[:, synthetic.EYES_CLOSE].max() <= 1.0
    assert curves.std(axis=0).min() > 0.05  # every coefficient moves
    jaw = synthetic.jaw_curve(0, t)
    assert jaw.min() >= 0.0 and jaw.max() <= synthetic.JAW_MAX and jaw.max() > 0.2
    # Smooth: neighbouring frames differ much less than the range.
    assert np.abs(np.diff(curves, axis=0)).max() < 0.5


# --------------------------------------------------------------------------------------------
# Rendering.


def test_expressions_change_only_the_face():
    scene = synthetic.build_scene()
    camera = synthetic.camera_trajectory(0, np.array([0.3]), 32)[0]
    neutral = {"jaw_pose": [0.0, 0.0, 0.0]}
    expressive = {"expression": [1.2, 1.0, 0.0, 0.0, 0.8], "jaw_pose": [0.3, 0.0, 0.0]}
    vertices = scene.pose([neutral, expressive])
    images = [scene.render(camera, v, 4) for v in vertices]
    masks = [scene.silhouette(camera, v) for v in vertices]
    union = masks[0] | masks[1]
    padded = np.pad(union, 1)
    dilated = np.zeros_like(union)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            dilated |= padded[1 + dy : 1 + dy + 32, 1 + dx : 1 + dx + 32]
    changed = np.abs(images[0] - images[1]).max(axis=-1) > 1e-9
    assert not np.any(changed & ~dilated)  # torso and wall do not follow the expression
    assert np.count_nonzero(changed & union) > 10
    assert np.count_nonzero(~dilated) > 500


def test_every_view_is_filled_by_the_scene():
    scene = synthetic.build_scene()
    size = 16
    t = np.linspace(0.0, 1.0, 40)
    cameras = synthetic.camera_trajectory(0, t, size) + synthetic.orbit_cameras(size)
    for camera in cameras:
        fragments = rasterize.rasterize(scene.static_vertices, scene.static_faces, camera)
        assert np.all(fragments.face_index >= 0)


def test_head_motion_is_small_and_nonzero(tmp_path):
    out = synthetic.generate(tmp_path / "motion", **MOTION8, head_motion=True, show_progress=False)
    golden_util.check_capture("motion8", out)
    poses = [_read(p) for p in sorted((out / "flame").glob("*.json"))]
    rotation = np.array([p["global_pose"] for p in poses])
    translation = np.array([p["translation"] for p in poses])
    assert np.all(np.linalg.norm(rotation, axis=1) > 0)
    assert np.all(np.linalg.norm(translation, axis=1) > 0)
    assert np.linalg.norm(rotation, axis=1).max() <= np.radians(3.0) + 1e-6
    assert np.linalg.norm(translation, axis=1).max() <= 0.005 + 1e-6
    static = synthetic.make_timeline(8, 3, 1, 0, False, 10)
    assert all(p["global_pose"] == [0.0, 0.0, 0.0] for p in static.params)


@pytest.mark.parametrize("degrees", [1.0, 10.0, 20.0, 30.0])
def test_head_motion_magnitude_scales_the_bare_flags_curves(degrees):
    t = np.linspace(0.0, 1.0, 200)
    rotation3, translation3 = synthetic.head_motion_curves(0, t)
    rotation, translation = synthetic.head_motion_curves(0, t, degrees)
    # Same curves, bounds scaled: rotation by degrees / 3, translation to its bound / 5 mm.
    bound = {1.0: 0.005 / 3.0, 10.0: 0.01, 20.0: 0.02, 30.0: 0.03}[degrees]
    assert synthetic.head_translation_bound(degrees) == pytest.approx(bound)
    np.testing.assert_allclose(rotation, rotation3 * degrees / 3.0, atol=1e-12)
    np.testing.assert_allclose(translation, translation3 * bound / 0.005, atol=1e-12)
    angle = np.degrees(np.linalg.norm(rotation, axis=1))
    assert angle.max() <= degrees + 1e-9 and angle.max() > 0.5 * degrees
    turns, nods = np.degrees(np.abs(rotation[:, 1])), np.degrees(np.abs(rotation[:, 0]))
    assert turns.max() > 0.5 * degrees and nods.max() > 0.3 * degrees
    assert np.linalg.norm(translation, axis=1).max() <= bound + 1e-12
    # The timeline writes them (rounded), and 0 degrees is the static head.
    timeline = synthetic.make_timeline(8, 150, 50, 0, degrees, 10)
    written = np.array([p["global_pose"] for p in timeline.params])
    np.testing.assert_allclose(written, rotation, atol=1e-6)
    still = synthetic.make_timeline(8, 3, 1, 0, 0.0, 10)
    assert still.params == synthetic.make_timeline(8, 3, 1, 0, False, 10).params
    assert synthetic.make_timeline(8, 3, 1, 0, 3.0, 10).params == (
        synthetic.make_timeline(8, 3, 1, 0, True, 10).params
    )


def test_head_turning_through_the_neck_joint_keeps_the_neck_base_still():
    """`head_joint="neck"` writes the rotation curves as FLAME's neck pose: the head turns by
    centimetres while the neck's base (in the torso) stays; "root" moves that base as well."""
    neck = synthetic.make_timeline(8, 20, 0, 1, 15.0, 10, head_joint="neck")
    root = synthetic.make_timeline(8, 20, 0, 1, 15.0, 10)
    for n, r in zip(neck.params, root.params, strict=True):
        assert n["neck_pose"] == r["global_pose"]
        assert n["global_pose"] == [0.0, 0.0, 0.0] and n["translation"] == [0.0, 0.0, 0.0]
        assert {k: v for k, v in n.items() if "pose" not in k and k != "translation"} == {
            k: v for k, v in r.items() if "pose" not in k and k != "translation"
        }
    scene = synthetic.build_scene()
    moved = {}
    for name, timeline in (("neck", neck), ("root", root)):
        vertices = scene.pose(timeline.params)  # (T, V, 3)
        rest = scene.pose(
            [
                {
                    **timeline.params[0],
                    "global_pose": [0.0] * 3,
                    "neck_pose": [0.0] * 3,
                    "translation": [0.0] * 3,
                }
            ]
        )[0]
        base = rest[:, 1] < rest[:, 1].min() + 0.01  # the neck's lowest centimetre
        top = rest[:, 1] > rest[:, 1].max() - 0.01  # the top of the head
        moved[name] = (
            np.linalg.norm(vertices[:, base] - rest[base], axis=-1).max(),
            np.linalg.norm(vertices[:, top] - rest[top], axis=-1).max(),
        )
    assert moved["neck"][0] < 1e-4  # metres: the base stays with the torso
    assert moved["neck"][1] > 0.02  # the head turns by centimetres about the neck
    assert moved["root"][0] > 0.005  # the whole mesh turns: the base slides
    with pytest.raises(ValueError, match="--head_joint"):
        synthetic.make_timeline(8, 20, 0, 1, 15.0, 10, head_joint="nek")


def test_a_neck_joint_capture_reads_back_as_written(tmp_path):
    """The capture reader poses the written neck pose as the generator rendered it."""
    out = synthetic.generate(
        tmp_path / "neck", **MOTION8, head_motion=15.0, head_joint="neck", show_progress=False
    )
    capture = capture_lib.load_capture(out)
    scene = synthetic.build_scene()
    for frame_id in capture.ids:
        raw = _read(out / "flame" / f"{frame_id}.json")
        assert raw["global_pose"] == [0.0, 0.0, 0.0] and np.linalg.norm(raw["neck_pose"]) > 0
        np.testing.assert_allclose(
            capture.vertices(frame_id),
            capture.scene.flame_to_scene(scene.pose([raw])[0]),
            atol=1e-5,
        )


def test_textures_are_deterministic_noise():
    rng = np.random.default_rng(0)
    points = rng.uniform(-10, 10, (5000, 3))
    a = textures.gradient_noise(points, seed=3)
    assert np.array_equal(a, textures.gradient_noise(points, seed=3))
    assert not np.allclose(a, textures.gradient_noise(points, seed=4))
    assert np.abs(a).max() <= 1.0 and a.std() > 0.1
    assert np.allclose(textures.gradient_noise(np.round(points)), 0.0)  # zero on the lattice
    # Continuity: a tiny step changes little.
    b = textures.gradient_noise(points + 1e-6, seed=3)
    assert np.abs(a - b).max() < 1e-4
    for material in textures.MATERIALS:
        color = material(rng.uniform(-0.1, 0.1, (50, 3)))
        assert color.shape == (50, 3) and np.all(np.isfinite(color))


# --------------------------------------------------------------------------------------------
# Options: vrig, normalisation, expression appearance.


def test_vrig_frames_share_a_training_frames_time_from_another_phone(tiny, tiny_vrig):
    capture = capture_lib.load_capture(tiny_vrig)
    plain = capture_lib.load_capture(tiny)
    assert validate.main([str(tiny_vrig)]) == 0
    assert capture.train_ids == plain.train_ids
    # Training frames 1, 3, 5 of 6 (evenly spread); ids are "vrig_" + their time index.
    shared = [plain.train_ids[k] for k in (1, 3, 5)]
    assert capture.val_ids == plain.val_ids + [f"vrig_{i}" for i in shared]
    metadata = _read(tiny_vrig / "metadata.json")
    # Adding vrig frames changes no other frame's files (scene.json's near/far may change).
    for folder, ext in (("rgb/1x", "png"), ("mask/1x", "png"), ("camera", "json")):
        for i in plain.ids:
            name = f"{folder}/{i}.{ext}"
            assert (tiny_vrig / name).read_bytes() == (tiny / name).read_bytes(), name
    assert {k: metadata[k] for k in plain.ids} == _read(tiny / "metadata.json")
    distances = evaluation_distance.code_frame_distances(capture, capture.val_ids)
    for i in shared:
        vrig = f"vrig_{i}"
        assert metadata[vrig] == {**metadata[i], "camera_id": 1}
        assert metadata[i]["camera_id"] == 0
        # The expression and head pose of the training frame of that time ...
        assert (tiny_vrig / "flame" / f"{vrig}.json").read_bytes() == (
            tiny_vrig / "flame" / f"{i}.json"
        ).read_bytes()
        # ... seen from 15 to 40 cm away (world camera files, then through the report).
        own = json.loads((tiny_vrig / "camera" / f"{vrig}.json").read_text())["position"]
        other = json.loads((tiny_vrig / "camera" / f"{i}.json").read_text())["position"]
        separation = np.linalg.norm(np.subtract(own, other))
        assert separation <= 0.45, vrig
        assert distances[vrig] == pytest.approx(separation, abs=1e-9)
        assert capture.mask(vrig).any()  # the head is in view
        assert not np.array_equal(capture.image(vrig), capture.image(i))


def test_vrig_phone_moves_independently_within_the_training_views():
    frames, vrig, size = 120, 120, 16
    timeline = synthetic.make_timeline(size, frames, 16, 0, False, 10, vrig=vrig)
    second = np.flatnonzero(timeline.camera_ids == 1)
    assert len(second) == vrig and np.all(timeline.is_val[second])
    scene = synthetic.build_scene()
    separations = []
    for k in second:
        camera, partner = timeline.cameras[k], timeline.cameras[timeline.time_index[k]]
        assert not timeline.is_val[timeline.time_index[k]]
        assert timeline.params[k] == timeline.params[timeline.time_index[k]]
        separations.append(np.linalg.norm(camera.position - partner.position))
        # Aimed near the head: the aim point is in front of the camera, near the centre.
        pixel = camera.project(synthetic.TARGET[None])[0]
        assert np.all(np.abs(pixel - size / 2) < 0.1 * size)
    separations = np.array(separations)
    # Independent of the first phone: from beside it to far from it ...
    assert separations.min() < 0.08 and separations.max() > 0.25

    # ... but held the same way: its views lie in the range the training views cover.
    def angles(cameras):
        offsets = np.array([c.position for c in cameras]) - synthetic.TARGET
        yaw = np.degrees(np.arctan2(offsets[:, 0], offsets[:, 2]))
        pitch = np.degrees(np.arcsin(offsets[:, 1] / np.linalg.norm(offsets, axis=1)))
        return yaw, pitch

    # (Both phones: yaw within +-YAW_DEG and pitch within +-PITCH_DEG, up to the jitter.)
    yaw, pitch = angles(timeline.cameras[k] for k in second)
    train_yaw, train_pitch = angles(timeline.cameras[k] for k in np.flatnonzero(~timeline.is_val))
    for values in (yaw, train_yaw):
        assert np.abs(values).max() <= synthetic.YAW_DEG + 1 and np.abs(values).max() > 15
    for values in (pitch, train_pitch):
        assert np.abs(values).max() <= synthetic.PITCH_DEG + 1
    for k in second[::4]:
        fragments = rasterize.rasterize(
            scene.static_vertices, scene.static_faces, timeline.cameras[k]
        )
        assert np.all(fragments.face_index >= 0)


def test_room_normalisation_changes_only_scene_json(tiny, tiny_room):
    room_files, head_files = _files(tiny_room), _files(tiny)
    assert set(room_files) == set(head_files)
    differ = sorted(k for k in room_files if room_files[k] != head_files[k])
    assert differ == ["scene.json"]
    assert validate.main([str(tiny_room)]) == 0
    plain = capture_lib.load_capture(tiny)
    room = capture_lib.load_capture(tiny_room)
    scene = room.file_scene  # scene.json as written
    assert 0.3 <= scene.scale <= 0.75
    assert np.linalg.norm(scene.center - synthetic.SCENE_CENTER) > 0.1  # not at the head
    # flamenerf's model frame does not depend on the normalisation: same cameras and meshes.
    for i in room.ids:
        np.testing.assert_allclose(room.cameras[i].position, plain.cameras[i].position, atol=1e-9)
        np.testing.assert_allclose(room.vertices(i), plain.vertices(i), atol=1e-6)
        np.testing.assert_allclose(
            room.cameras[i].orientation, plain.cameras[i].orientation, atol=1e-12
        )
    # In scene.json's own units, the room (cameras and the wall they see) lies in the ball of
    # radius 0.5; near and far hold the head and the wall.
    to_file = lambda x: scene.normalize(x / room.scene.scale + room.scene.center)
    positions = np.array([to_file(room.cameras[i].position) for i in room.ids])
    assert np.linalg.norm(positions, axis=1).max() <= 0.5
    for i in room.ids:
        camera = dataclasses.replace(room.cameras[i], position=to_file(room.cameras[i].position))
        vertices = to_file(room.vertices(i).astype(np.float64))
        distances = np.linalg.norm(vertices - camera.position, axis=1)
        assert scene.near < distances.min() and distances.max() < scene.far
        corners = np.array([[0.0, 0.0], [16.0, 16.0]])
        origins, directions = camera.pixels_to_rays(corners)
        wall_z = (synthetic.WALL_Z - scene.center[2]) * scene.scale
        reach = (wall_z - origins[:, 2]) / directions[:, 2]  # ray length to the wall
        assert np.all(reach < scene.far)
        assert np.all(np.abs(origins + reach[:, None] * directions) <= 0.5 + 1e-9)
        assert np.all(vertices >= scene.bbox[0]) and np.all(vertices <= scene.bbox[1])


def _head_pixels(scene, camera, vertices, supersample):
    """(H, W) bool: pixels any of whose sub-pixels the head covers."""
    fine = scene.silhouette(camera.scale(1.0 / supersample), vertices)
    h, w = camera.image_shape
    return fine.reshape(h, supersample, w, supersample).any(axis=(1, 3))


def test_expression_appearance_changes_the_face_and_nothing_else():
    scene = synthetic.build_scene()
    size, k = 24, 4
    camera = synthetic.camera_trajectory(0, np.array([0.3]), size)[0]
    names = head.EXPRESSION_NAMES
    cases = [({"brow_raise": 1.4}, 0.0), ({"smile": 1.4}, 0.0), ({"cheek_puff": 1.4}, 0.0)]
    for values, jaw in [*cases, ({}, 0.3)]:
        expression = np.zeros(10)
        for name, value in values.items():
            expression[names.index(name)] = value
        params = {"expression": expression.tolist(), "jaw_pose": [jaw, 0.0, 0.0]}
        vertices = scene.pose([params])[0]
        plain = scene.render(camera, vertices, k)
        styled = scene.render(camera, vertices, k, expression=expression, jaw=jaw)
        inside = _head_pixels(scene, camera, vertices, k)
        change = np.abs(styled - plain).max(axis=-1)
        assert np.all(change[~inside] == 0.0), values  # not at all outside the head
        # A clear margin in the face (13 levels of 255 at 24 px; about 0.18 at 64 px).
        assert change[inside].max() > 0.05, (values, jaw)
        assert np.count_nonzero(change[inside] > 0.02) >= 5, (values, jaw)
    # A neutral expression with the mouth closed looks as without the option.
    vertices = scene.pose([{"jaw_pose": [0.0, 0.0, 0.0]}])[0]
    neutral = scene.render(camera, vertices, k, expression=np.zeros(10), jaw=0.0)
    assert np.array_equal(neutral, scene.render(camera, vertices, k))


def test_specular_highlight_is_on_the_head_only_and_follows_the_camera():
    scene = synthetic.build_scene()
    size, k = 24, 4
    vertices = scene.pose([{"jaw_pose": [0.0, 0.0, 0.0]}])[0]
    changes = []
    for t in (0.2, 0.7):
        camera = synthetic.camera_trajectory(0, np.array([t]), size)[0]
        plain = scene.render(camera, vertices, k)
        shiny = scene.render(camera, vertices, k, specular=True)
        inside = _head_pixels(scene, camera, vertices, k)
        change = shiny - plain
        assert np.all(change[~inside] == 0.0)  # torso and wall stay Lambertian
        assert np.all(change >= 0.0) and change.max() > 0.05  # a white highlight, added
        assert change.max() <= synthetic.SPECULAR + 1e-12  # at most its full strength
        changes.append(change)
    # Move the camera and the highlight moves over the face: the colour depends on the view.
    assert np.abs(changes[0] - changes[1]).max() > 0.02


def test_expression_appearance_terms():
    """Each term where it belongs, growing with its coefficient (texture level)."""
    weights = np.zeros((4, textures.NUM_MATERIALS))
    weights[:3, head.SKIN] = 1.0
    weights[3, head.MOUTH_INTERIOR] = 1.0
    points = np.array(
        [
            [0.0, 0.0735, 0.085],  # on a forehead line (the second, 7 mm above the first)
            [0.043, -0.012, 0.07],  # the apple of the left cheek
            [0.0, -0.20, 0.0],  # far from the face: no term reaches it
            [0.002, -0.046, 0.08],  # in the mouth, near the upper lip
        ]
    )
    jaw_weight = np.array([0.0, 0.0, 0.0, 0.05])
    albedo = textures.shade_materials(points, weights)
    apply = lambda e, jaw=0.0: textures.expression_appearance(
        points, weights, jaw_weight, albedo, np.array(e, float), jaw
    )
    assert np.array_equal(apply([0.0] * 10), albedo)
    brows = [apply([0.0, b]) for b in (0.5, 1.0, 1.5)]
    lum = [b[0].sum() for b in brows]
    assert lum[0] > lum[1] > lum[2] and lum[2] < 0.8 * albedo[0].sum()
    flushed = apply([0.0, 0.0, 1.5])
    assert flushed[1, 0] / flushed[1, 1] > 1.2 * albedo[1, 0] / albedo[1, 1]  # redder
    for e in ([1.5, 1.5, 1.5], [0.0, 1.5]):
        np.testing.assert_array_equal(apply(e)[2], albedo[2])
    # The upper teeth, light, as the jaw opens; dark red mouth interior when closed.
    assert apply([0.0] * 10, 0.3)[3].min() > 0.6 and albedo[3].max() < 0.35
    assert textures.activation(0.1) == 0.0 and textures.activation(1.2) == 1.0


def test_cli_writes_every_option_and_a_contact_sheet(tmp_path, capsys):
    out, sheet = tmp_path / "all", tmp_path / "sheet.png"
    argv = ["--out", str(out), "--size", "16", "--train_frames", "4", "--val", "2", "--seed", "2"]
    argv += ["--vrig", "2", "--head_motion", "20", "--normalisation", "room"]
    argv += ["--expression_appearance", "--specular", "--quiet", "--contact_sheet", str(sheet)]
    code, output = _run(argv, capsys)
    assert code == 0, output.err
    assert "2 vrig" in output.out and sheet.is_file()
    capture = capture_lib.load_capture(out)
    assert validate.main([str(out)]) == 0
    assert [i for i in capture.val_ids if i.startswith("vrig_")] == ["vrig_0002", "vrig_0005"]
    rotation = np.array([capture.flame_params[i].global_pose for i in capture.ids])
    assert np.degrees(np.linalg.norm(rotation, axis=1)).max() > 5.0  # a 20-degree motion
    for i in capture.ids:  # the bbox holds the moving head
        v = capture.vertices(i)
        assert np.all(v >= capture.scene.bbox[0]) and np.all(v <= capture.scene.bbox[1])
    # The same capture through generate() is byte-identical (the CLI passes every option).
    again = synthetic.generate(
        tmp_path / "again",
        size=16,
        frames=4,
        val=2,
        seed=2,
        vrig=2,
        head_motion=20.0,
        normalisation="room",
        expression_appearance=True,
        specular=True,
        show_progress=False,
    )
    assert _files(again) == _files(out)


def test_cli_bare_head_motion_is_todays_motion(tmp_path, capsys):
    out = tmp_path / "motion"
    argv = ["--out", str(out), "--size", "8", "--train_frames", "3", "--val", "1", "--seed", "0"]
    code, output = _run([*argv, "--head_motion", "--quiet"], capsys)
    assert code == 0, output.err
    golden_util.check_capture("motion8", out)


def test_expression_appearance_sheet(tmp_path):
    path = synthetic.expression_appearance_sheet(tmp_path / "sheet.png", size=24)
    from PIL import Image

    image = np.asarray(Image.open(path))
    rows = len(synthetic.APPEARANCE_SHEET_ROWS)
    assert image.shape[1] == 3 * 24 + 16 and image.shape[0] == rows * (24 + 18) + 4


# --------------------------------------------------------------------------------------------
# The cached default capture.


def test_default_capture_is_cached_and_keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("FLAMENERF_CACHE", str(tmp_path / "cache"))
    args = {"size": 8, "frames": 2, "val": 1}
    path = synthetic.default_capture(**args, show_progress=False)
    assert path.parent == tmp_path / "cache" / "captures"
    assert path.name == synthetic.capture_key(**args)
    capture_lib.load_capture(path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a cached capture")

    monkeypatch.setattr(synthetic, "generate", fail)
    assert synthetic.default_capture(**args, show_progress=False) == path
    keys = {
        synthetic.capture_key(),
        synthetic.capture_key(seed=1),
        synthetic.capture_key(size=32),
        synthetic.capture_key(head_motion=True),
        synthetic.capture_key(num_expression=5),
        synthetic.capture_key(frames=10, val=2),
        synthetic.capture_key(head_motion=10.0),
        synthetic.capture_key(vrig=4),
        synthetic.capture_key(normalisation="room"),
        synthetic.capture_key(expression_appearance=True),
        synthetic.capture_key(head_motion=10.0, head_joint="neck"),
    }
    assert len(keys) == 11
    assert "-neckjoint-" in synthetic.capture_key(head_motion=10.0, head_joint="neck")
    assert synthetic.capture_key(head_motion=10.0, head_joint="root") == (
        synthetic.capture_key(head_motion=10.0)
    )
    assert "-motion10deg-" in synthetic.capture_key(head_motion=10)
    assert synthetic.capture_key(head_motion=0.0) == synthetic.capture_key()
    with pytest.raises(TypeError, match="unknown arguments"):
        synthetic.default_capture(wrinkles=True)
    assert synthetic.capture_key() == synthetic.capture_key(**synthetic.DEFAULTS)
    assert synthetic.GENERATOR_VERSION in synthetic.capture_key()


# --------------------------------------------------------------------------------------------
# Command line.


def _run(argv, capsys):
    try:
        code = synthetic.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "4"], "--size"),
        (["--train_frames", "1"], "--train_frames"),
        (["--val", "9", "--train_frames", "3"], "--val"),
        (["--num_expression", "99"], "--num_expression"),
        (["--seed", "-1"], "--seed"),
        (["--size", "big"], "--size"),
        (["--vrig", "4", "--train_frames", "3", "--val", "1"], "--vrig"),
        (["--vrig", "-1"], "--vrig"),
        (["--head_motion", "31"], "--head_motion"),
        (["--head_motion", "-2"], "--head_motion"),
        (["--head_motion", "nan"], "--head_motion"),
        (["--head_motion", "lots"], "--head_motion"),
        (["--normalisation", "world"], "--normalisation"),
        (["--head_joint", "spine"], "--head_joint"),
        (["--head_joint", "neck"], "--head_joint"),  # a static head has nothing to turn
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, extra, message):
    code, output = _run(["--out", str(tmp_path / "x"), *extra], capsys)
    assert code != 0
    lines = output.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "x").exists()


def test_cli_refuses_a_non_empty_folder_and_overwrites(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["--out", str(out), "--size", "8", "--train_frames", "2", "--val", "0", "--quiet"]
    code, output = _run(args, capsys)
    assert code != 0 and len(output.err.strip().splitlines()) == 1
    assert "--overwrite" in output.err
    sheet = tmp_path / "sheet.png"
    code, output = _run([*args, "--overwrite", "--contact_sheet", str(sheet)], capsys)
    assert code == 0, output.err
    assert (out / "keep.txt").read_text() == "mine"
    capture_lib.load_capture(out)
    assert sheet.is_file()


def test_cli_help_documents_every_flag(capsys):
    code, output = _run(["--help"], capsys)
    assert code == 0
    for flag in (
        "--out",
        "--size",
        "--train_frames",
        "--val",
        "--seed",
        "--head_motion",
        "--num_expression",
        "--vrig",
        "--normalisation",
        "--expression_appearance",
        "--specular",
        "--head_joint",
        "--contact_sheet",
        "--overwrite",
        "--quiet",
    ):
        assert flag in output.out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head_motion": "yes"}, "--head_motion"),
        ({"head_motion": 45.0}, "[0, 30]"),
        ({"vrig": 1.5}, "--vrig"),
        ({"normalisation": "Head"}, "--normalisation"),
        ({"expression_appearance": 1}, "--expression_appearance"),
        ({"head_joint": "Neck", "head_motion": 10.0}, "--head_joint"),
        ({"head_joint": ["neck"], "head_motion": 10.0}, "--head_joint"),
        ({"head_joint": "neck"}, "needs --head_motion"),
    ],
)
def test_generate_rejects_bad_options_before_writing(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        synthetic.generate(tmp_path / "x", **TINY, **kwargs, show_progress=False)
    with pytest.raises(ValueError, match="--"):
        synthetic.capture_key(**kwargs)
    assert not (tmp_path / "x").exists()


def test_flame_params_round_trip(tiny, tiny_capture):
    """What flame/ID.json says is what was rendered: rounded values, exact JSON numbers."""
    frame_id = tiny_capture.train_ids[0]
    raw = _read(tiny / "flame" / f"{frame_id}.json")
    assert set(raw) == set(flame.FlameParams._fields)
    assert len(raw["shape"]) == 20 and len(raw["eye_pose"]) == 6
    timeline = synthetic.make_timeline(**TINY, head_motion=False, num_expression=10)
    assert timeline.params[0] == raw
