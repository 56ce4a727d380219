# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Shared by the tests of `flamenerf.capture.trackers`: tiny captures with cameras, tracked
truth, the `import-flame` step run in-process and checks of what it wrote."""

import argparse
import json

import jax
import numpy as np
from scipy.spatial.transform import Rotation

from flamenerf.capture.trackers.command import add_arguments, run
from flamenerf.capture.trackers.similarity import Similarity
from flamenerf.datasets.capture import load_capture
from flamenerf.geometry import flame
from flamenerf.geometry.camera import look_at

IDS = ["t00", "t01", "t02", "v00"]  # write_capture's frames (3 train, 1 validation)
WIDTH, HEIGHT = 8, 6  # write_capture's image size
F = np.diag([1.0, -1.0, -1.0])  # OpenGL <-> OpenCV camera axes


def import_flame(capture, tracker, path, *extra):
    """Runs the step's `run` on parsed arguments, so StepError propagates to the test."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args([str(capture), "--from", tracker, str(path), *extra]))


def orbit_cameras(rng, count=None, distance=0.5):
    """Capture cameras (one per frame of IDS unless `count`) looking at the head, 8x6 pixels."""
    cameras = []
    for _ in range(count or len(IDS)):
        yaw, pitch = rng.uniform(-0.7, 0.7), rng.uniform(-0.3, 0.3)
        direction = [np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)]
        position = np.array(direction) * distance * rng.uniform(0.9, 1.1)
        cameras.append(
            look_at(
                position,
                rng.normal(scale=0.01, size=3),
                [0.0, 1.0, 0.0],
                focal_length=10.0,
                image_size=(WIDTH, HEIGHT),
            )
        )
    return cameras


def write_cameras(root, cameras):
    for frame_id, camera in zip(IDS, cameras, strict=True):
        camera.to_json(root / "camera" / f"{frame_id}.json")


def random_similarity(rng):
    return Similarity(
        float(rng.uniform(0.5, 3.0)),
        Rotation.random(random_state=rng).as_matrix(),
        rng.normal(size=3),
    )


def inverse(similarity):
    rotation = similarity.rotation.T
    return Similarity(
        1 / similarity.scale, rotation, -rotation @ similarity.translation / similarity.scale
    )


def random_params(rng, num_shape=2, num_expression=4):
    return flame.FlameParams(
        shape=rng.normal(size=num_shape),
        expression=rng.normal(size=num_expression),
        global_pose=rng.normal(scale=0.2, size=3),
        neck_pose=rng.normal(scale=0.1, size=3),
        jaw_pose=rng.normal(scale=0.1, size=3),
        eye_pose=rng.normal(scale=0.1, size=6),
        translation=rng.normal(scale=0.02, size=3),
    )


def read_flame(root, frame_id):
    return json.loads((root / "flame" / f"{frame_id}.json").read_text())


def assert_params(root, truth, num_shape=2, num_expression=4, fields=None):
    """flame/ID.json equals the truth, cut to the model's shape and expression counts."""
    for frame_id, params in zip(IDS, truth, strict=True):
        written = read_flame(root, frame_id)
        for name in fields or flame.FlameParams._fields:
            expected = getattr(params, name)
            if name == "shape":
                expected = expected[:num_shape]
            if name == "expression":
                expected = expected[:num_expression]
            np.testing.assert_allclose(written[name], expected, atol=1e-9, err_msg=name)


def assert_to_world(root, similarity):
    to_world = json.loads((root / "scene.json").read_text())["flame"]["to_world"]
    np.testing.assert_allclose(to_world["scale"], similarity.scale, rtol=1e-9)
    np.testing.assert_allclose(to_world["rotation"], similarity.rotation, atol=1e-9)
    np.testing.assert_allclose(to_world["translation"], similarity.translation, atol=1e-9)


def posed(model, params):
    """FLAME output of the parameter sets, batched (the compilation is shared with the loader)."""
    return jax.jit(flame.forward)(model, flame.stack_params(params, model))


def world_vertices(model, params, to_world):
    """(N, V, 3) posed FLAME vertices of each parameter set, placed by `to_world`."""
    return to_world.apply(np.asarray(posed(model, params).vertices, np.float64))


def assert_capture_vertices(root, expected_world):
    """The loader's normalised vertices of every frame equal the expected world vertices."""
    capture = load_capture(root)
    for frame_id, expected in zip(IDS, expected_world, strict=True):
        np.testing.assert_allclose(
            capture.vertices(frame_id), capture.scene.normalize(expected), atol=2e-5
        )


def unposed_roots(model, params):
    """(N, 3) root joints of the shaped, expressed meshes (the pivot of the global rotation)."""
    bare = [flame.FlameParams(shape=p.shape, expression=p.expression) for p in params]
    return np.asarray(posed(model, bare).joints[:, 0], np.float64)


def still_head_truth(rng, model, to_world, neck_and_eyes=True):
    """Per-frame parameters whose root joint stays at one point; shape shared."""
    shape = rng.normal(size=2)
    centre = rng.normal(scale=0.02, size=3)
    global_pose = rng.normal(scale=0.2, size=3)
    truth = [random_params(rng)._replace(shape=shape, global_pose=global_pose) for _ in IDS]
    if not neck_and_eyes:
        truth = [p._replace(neck_pose=np.zeros(3), eye_pose=np.zeros(6)) for p in truth]
    roots = unposed_roots(model, truth)
    return [p._replace(translation=centre - r) for p, r in zip(truth, roots, strict=True)]


def head_in_cameras(model, truth, to_world, cameras):
    """Per frame (O, q): head orientation and root position in OpenCV camera axes, FLAME units."""
    heads = []
    for p, camera, root in zip(truth, cameras, unposed_roots(model, truth), strict=True):
        root = to_world.apply(root + p.translation)
        rotation = to_world.rotation @ Rotation.from_rotvec(p.global_pose).as_matrix()
        heads.append(
            (
                camera.orientation @ rotation,
                camera.orientation @ (root - camera.position) / to_world.scale,
            )
        )
    return heads


def c2w(camera, opengl):
    """(4, 4) camera-to-world of an OpenCV camera, in OpenGL camera axes if `opengl`."""
    matrix = np.eye(4)
    matrix[:3, :3] = camera.orientation.T @ (F if opengl else np.eye(3))
    matrix[:3, 3] = camera.position
    return matrix


def save_npz(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
