# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""avatar.glb in Blender: its glTF importer gives a user what the asset holds, and its exporter
is a third independent writer for `gltf.read_glb`.

The asset is `pipeline.export`'s of test_eval's tiny trained experiment with a head to rig
(export_util.tiny_export with `head`: the canonical field a soft sphere through the FLAME
head; one animation whose last key frame turns, rolls and shifts the head). Blender
runs as a Python module (`bpy`, the PyPI wheel in setup.py's test extra) in its own process
(tests/blender_util.py), which imports the file with `bpy.ops.import_scene.gltf`, reads
Blender's own data and exports it again with `bpy.ops.export_scene.gltf`. Checked: the head
mesh's vertex count and positions; one shape key per expression coefficient, named as ours,
which moves the same vertices by the same amounts as our morph targets; the armature's bones
root > neck > jaw at our joints, with our skin weights as vertex groups; the animation as an
action of one key per key frame, whose playback (armature and shape keys evaluated by
Blender) puts every head vertex where our preview's posing of the same time does; and
Blender's export read back by `gltf.read_glb` as the same asset. Skipped, saying so, only when
bpy is not installed or does not import (a system library missing: .ci/run installs them).
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_util import tiny_export
from scipy.spatial import cKDTree

from flamenerf.export import gltf, preview

SCRIPT = Path(__file__).resolve().parents[1] / "blender_util.py"


@pytest.fixture(scope="module")
def blender(tmp_path_factory):
    """(our asset, Blender's json, Blender's arrays, Blender's re-export read back)."""
    if importlib.util.find_spec("bpy") is None:
        pytest.skip(
            "bpy (Blender as a Python module, the PyPI wheel) is not installed: "
            "`pip install -e '.[test]'` installs it on CPython 3.11 (its only wheels)"
        )
    imported = subprocess.run(
        [sys.executable, "-c", "import bpy"], capture_output=True, text=True, timeout=300
    )
    if imported.returncode != 0:  # a system library missing (.ci/run installs them)
        lines = imported.stderr.strip().splitlines() or ["no message"]
        pytest.skip(f"bpy is installed but does not import: {lines[-1]}")
    out = tiny_export(tmp_path_factory, head=True)
    glb = out / "avatar.glb"
    asset = gltf.read_glb(glb.read_bytes(), str(glb))
    times = asset.animations[0].times
    fps = 1.0 / float(times[1] - times[0])
    work = tmp_path_factory.mktemp("blender")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(glb), str(work), f"{fps:.6f}"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    info = json.loads((work / "blender.json").read_text())
    with np.load(work / "blender.npz") as data:
        arrays = {name: data[name] for name in data.files}
    back = gltf.read_glb((work / "blender.glb").read_bytes(), "blender.glb")
    print(f"Blender {info['version']}: {info['objects']}")
    return asset, info, arrays, back


def tolerance(asset):
    """Float32 positions of the capture's world: a millionth of the scene's extent."""
    extent = np.abs(np.concatenate([asset.head.positions, asset.room.positions])).max()
    return 1e-6 * max(1.0, float(extent))


def weights_by_joint(mesh):
    """(V, 3) each vertex's weight of root, neck and jaw (JOINTS_0 / WEIGHTS_0 summed)."""
    out = np.zeros((len(mesh.positions), 3))
    for slot in range(mesh.joints.shape[1]):
        np.add.at(out, (np.arange(len(out)), mesh.joints[:, slot]), mesh.weights[:, slot])
    return out


def test_the_head_mesh_and_its_shape_keys(blender):
    asset, info, arrays, _ = blender
    head, atol = asset.head, tolerance(asset)
    assert len(head.faces) and asset.num_expression == 3
    assert arrays["positions"].shape == head.positions.shape  # the vertex count is ours
    np.testing.assert_allclose(arrays["positions"], head.positions, atol=atol)
    assert info["room_vertices"] == len(asset.room.positions)
    names = gltf.expression_names(asset.num_expression)
    assert info["shape_keys"] == ["Basis", *names]
    np.testing.assert_allclose(arrays["keys"], head.positions + head.targets, atol=atol)
    # A shape key at 1 (Blender evaluating the mesh) moves each vertex by our morph target.
    np.testing.assert_allclose(arrays["moved"], head.targets, atol=atol)
    assert np.abs(head.targets).max() > 100 * atol  # the targets move something


def test_the_armature_and_the_skin_weights(blender):
    asset, info, arrays, _ = blender
    assert [tuple(b) for b in info["bones"]] == [("root", None), ("neck", "root"), ("jaw", "neck")]
    rest = asset.skeleton.rest_world()[:, :3, 3]
    np.testing.assert_allclose(arrays["bone_heads"], rest, atol=tolerance(asset))
    assert info["groups"] == ["root", "neck", "jaw"]
    np.testing.assert_allclose(arrays["weights"], weights_by_joint(asset.head), atol=1e-6)


def test_the_animation_is_an_action_that_plays_as_ours(blender):
    asset, info, arrays, _ = blender
    animation = asset.animations[0]
    keys = len(animation.times)
    assert list(info["actions"]) == [animation.name] == ["driving"]
    action = info["actions"][animation.name]
    assert action["frame_range"] == [0.0, keys - 1.0]
    paths = {path for path, _, _ in action["fcurves"]}
    assert paths == {
        'pose.bones["neck"].location',
        'pose.bones["neck"].rotation_quaternion',
        'pose.bones["jaw"].rotation_quaternion',
        *(f'key_blocks["{name}"].value' for name in gltf.expression_names(asset.num_expression)),
    }
    assert all(count == keys for _, _, count in action["fcurves"])
    frames = arrays["frames"]
    assert len(frames) == keys
    still = asset.head.positions.astype(np.float64)
    for k, time in enumerate(animation.times):
        _, want = preview.pose_animation(asset, animation.name, float(time))
        np.testing.assert_allclose(frames[k], want, atol=10 * tolerance(asset), err_msg=f"key {k}")
    assert np.abs(frames[-1] - still).max() > 1e-3  # the last key turns and shifts the head


def test_blenders_export_reads_back_as_the_same_asset(blender):
    asset, _, _, back = blender
    atol = tolerance(asset)
    for ours, theirs in ((asset.room, back.room), (asset.head, back.head)):
        assert theirs.positions.shape == ours.positions.shape
        # Blender may order vertices its own way: matched by position.
        distance, match = cKDTree(ours.positions).query(theirs.positions)
        assert distance.max() <= atol
        np.testing.assert_array_equal(theirs.faces.shape, ours.faces.shape)
        # Blender's importer keeps vertex colours as 8-bit sRGB.
        srgb = lambda c: preview.linear_to_srgb(c) * 255
        np.testing.assert_allclose(srgb(theirs.colours), srgb(ours.colours[match]), atol=1.0)
    head, ours = back.head, asset.head
    _, match = cKDTree(ours.positions).query(head.positions)
    # Blender's exporter drops influences below 1e-4 and renormalises.
    np.testing.assert_allclose(weights_by_joint(head), weights_by_joint(ours)[match], atol=1e-4)
    np.testing.assert_allclose(head.targets, ours.targets[:, match], atol=atol)
    np.testing.assert_allclose(back.inverse_bind, asset.inverse_bind, atol=atol)
    for name in ("neck_translation", "jaw_translation"):
        np.testing.assert_allclose(
            getattr(back.skeleton, name), getattr(asset.skeleton, name), atol=atol
        )
    assert back.info == asset.info  # carried by the scene's custom property
    (theirs,) = back.animations
    (animation,) = asset.animations
    assert theirs.name == animation.name
    np.testing.assert_allclose(theirs.times, animation.times, atol=1e-6)
    np.testing.assert_allclose(theirs.expression, animation.expression, atol=1e-6)
    np.testing.assert_allclose(theirs.neck_translation, animation.neck_translation, atol=atol)
    for track in ("neck", "jaw"):  # q and -q are one rotation
        dots = np.sum(getattr(theirs, track) * getattr(animation, track), axis=1)
        np.testing.assert_allclose(np.abs(dots), 1.0, atol=1e-6)
