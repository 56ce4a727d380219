# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME guide's "neck" rigid weight (flamenerf/nerf/guide.py, GuideConfig.rigid_weight):
the head's motion undone above the neck, the torso and the room left exactly in place, and the
map one-to-one; its configuration, and the "ball" default left as it was."""

import typing
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from capture_util import write_capture
from guide_util import build_in_flame_units, in_flame_units
from scipy.spatial.transform import Rotation

from flamenerf import configs
from flamenerf.geometry import flame
from flamenerf.nerf import guide
from flamenerf.synthetic import generator
from flamenerf.training import experiment

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "gin" / "tiny.gin")
LEVEL, FADE = 0.0, 0.02  # GuideConfig.neck_level_m, neck_fade_m (defaults)
NECK = guide.GuideSettings(0.008, 16, 0.002, True, 0.06, "neck", LEVEL, FADE)
BALL = guide.GuideSettings(0.008, 16, 0.002, True, 0.06)
TO_REST = jax.jit(guide.to_rest)


def build(head_model, params, settings=NECK, frames=None):
    """Posed and neutral vertices of `params` and their grids (FLAME units as the frame)."""
    posed, neutral, grids = build_in_flame_units(head_model, params, settings, frames)
    return posed, neutral, jax.tree.map(jnp.asarray, grids)


def rest_of(grids, frame, points):
    """The rigid part of one frame on (P, 3) points, as numpy."""
    out = TO_REST(grids, jnp.array([frame]), jnp.asarray(points[None], jnp.float32))
    return np.asarray(out[0], np.float64)


def power(transform, s):
    """T^s of a rigid (4, 4) transform (the screw motion's share s), independently of the
    guide: the matrix exponential of s times its logarithm."""
    return np.real(scipy.linalg.expm(s * scipy.linalg.logm(transform)))


def moved(transform, points):
    return points @ transform[:3, :3].T + transform[:3, 3]


def heights(subject, params, points):
    """(P,) heights of FLAME-space points above the root joint at rest, along FLAME's up axis."""
    root, up = guide.neck_frame(subject, [params], lambda x: x)[0]
    return (points - root) @ up


def combined(degrees, signs):
    """The rotation vector of yaw, pitch and roll of `degrees` each (signs: three +-1)."""
    angles = np.deg2rad(degrees) * np.asarray(signs, np.float64)
    return list(Rotation.from_euler("YXZ", angles).as_rotvec())


MOTIONS = [
    flame.FlameParams(global_pose=[0.25, 0.2, 0.0], translation=[0.02, 0.0, 0.0]),
    flame.FlameParams(neck_pose=[0.0, -0.3, 0.0], translation=[0.0, 0.0, -0.02]),
    flame.FlameParams(global_pose=combined(20, (1, -1, 1)), translation=[0.0, 0.02, 0.0]),
    flame.FlameParams(global_pose=combined(20, (-1, 1, 1)), translation=[0.0, -0.02, 0.0]),
]


@pytest.fixture(scope="module")
def rigid_only(head_model):
    """Pure rigid head motions (18 to 36 degrees, 2 cm) and their "neck" grids (no residual)."""
    return build(head_model, MOTIONS, frames=[])


# --------------------------------------------------------------------------------------------
# Exact where it must be.


def test_the_head_moves_exactly_above_the_neck(rigid_only, head_model):
    posed, neutral, grids = rigid_only
    subject = in_flame_units(head_model)
    transforms = guide.head_transforms(subject, MOTIONS)
    head = guide.head_vertices(head_model)
    rng = np.random.default_rng(0)
    for f, params in enumerate(MOTIONS):
        # The head's vertices and points up to 2 cm off them, moved by the head's motion T.
        rest = neutral[f][head]
        rest = np.concatenate([rest, rest[::5] + rng.uniform(-0.02, 0.02, (len(rest[::5]), 3))])
        points = moved(transforms[f], rest)
        # Exactly T^-1 where every step finds weight 1: in the posed ball, and each share of
        # the way back, T^(1 - k/K) of the rest point (k < K), at or above the level.
        centre, radius = np.asarray(grids.centre[f]), float(grids.radius[f])
        inside = np.linalg.norm(points - centre, axis=1) < radius - 1e-6
        k = np.arange(guide.NECK_STEPS)
        above = np.all(
            [
                heights(subject, params, moved(power(transforms[f], 1 - s), rest)) >= LEVEL + 1e-6
                for s in k / guide.NECK_STEPS
            ],
            axis=0,
        )
        exact = inside & above
        # Of the head's vertices: all but the neck's lowest ring (99.4%), and the chin that a
        # 36 degree motion with a nod down and a 2 cm drop takes below the level (84.5%).
        share = exact[: head.sum()].mean()
        print(f"motion {f}: head vertices moved exactly {100 * share:.1f}%")
        assert share > 0.8, share
        np.testing.assert_allclose(rest_of(grids, f, points[exact]), rest[exact], atol=2e-6)
    # At rest, every head vertex above the level has weight 1: all but FLAME's lowest neck ring.
    weights = guide.vertex_weights(grids, neutral)[0][head]
    above_level = heights(subject, MOTIONS[0], neutral[0][head]) >= LEVEL + 1e-6  # float32
    assert weights[above_level].min() > 1 - 1e-12  # (the ball's radius is stored in float32)
    partial = weights < 1 - 1e-12
    assert 0 < np.mean(partial) < 0.01
    assert np.all(neutral[0][head][partial][:, 1] < -0.1)  # the neck's ring, below the chin


def test_the_torso_below_the_fade_and_the_room_stay_exactly_put(rigid_only, head_model):
    _, _, grids = rigid_only
    subject = in_flame_units(head_model)
    scene = generator.build_scene()
    rng = np.random.default_rng(1)
    for f, params in enumerate(MOTIONS):
        centre, radius = np.asarray(grids.centre[f], np.float64), float(grids.radius[f])
        # Below the neck's fade, anywhere around the head's ball (shoulders, chest, the neck
        # stub): weight 0 at every step, whatever the motion.
        points = centre + rng.uniform(-0.3, 0.3, (4000, 3))
        points = points[heights(subject, params, points) <= LEVEL - FADE - 1e-6]
        points = points.astype(np.float32)
        assert len(points) > 800
        np.testing.assert_array_equal(rest_of(grids, f, points), points)
        # The generator's torso: its top lies below the fade.
        torso = scene.static_vertices[: scene.num_torso_vertices]
        torso = torso[heights(subject, params, torso) <= LEVEL - FADE - 1e-6].astype(np.float32)
        assert len(torso) > 0.9 * scene.num_torso_vertices
        np.testing.assert_array_equal(rest_of(grids, f, torso), torso)
        # Beyond the fade L from every ball of the way back (its centre moves at most |T^-1 c'
        # - c'| along the screw): the room.
        rest_centre = rest_of(grids, f, centre[None])[0]
        sweep = np.linalg.norm(
            guide.twist_velocity(
                np.asarray(grids.rigid[f : f + 1], np.float64),
                np.asarray(grids.rotation[f : f + 1], np.float64),
                centre[None],
            )
        )
        assert np.linalg.norm(rest_centre - centre) <= sweep + 1e-6
        direction = rng.normal(size=(500, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        reach = radius + float(grids.fade) + sweep + 1e-4
        points = (centre + direction * reach * rng.uniform(1.0, 3.0, (500, 1))).astype(np.float32)
        np.testing.assert_array_equal(rest_of(grids, f, points), points)


def test_vertices_below_the_neck_keep_their_place_the_head_goes_to_its_neutral(head_model):
    # A turned, shifted head with an open jaw and an expression: the guide's targets.
    params = [
        flame.FlameParams(
            expression=[1.0, 0.5],
            jaw_pose=[0.3, 0, 0],
            global_pose=combined(12, (1, 1, -1)),
            translation=[0.01, -0.01, 0.0],
        )
    ]
    posed, neutral, grids = build(head_model, params)
    rest = rest_of(grids, 0, posed[0])
    weight = guide.vertex_weights(grids, neutral)[0]
    targets = guide.vertex_targets(grids, posed, neutral)[0]
    whole = weight > 1 - 1e-12
    np.testing.assert_allclose(targets[whole], neutral[0][whole], atol=1e-12)
    np.testing.assert_allclose(targets[weight == 0], rest[weight == 0], atol=1e-12)
    assert (weight == 0).sum() > 100  # FLAME's neck stub, which the torso swallows
    ball = guide.vertex_targets(
        jax.tree.map(jnp.asarray, build(head_model, params, BALL)[2]), posed, neutral
    )
    np.testing.assert_array_equal(ball, neutral)  # the "ball" weight: every vertex to its neutral


# --------------------------------------------------------------------------------------------
# One-to-one.


def test_the_rigid_part_never_folds_under_20_degree_turns_nods_and_tilts(head_model):
    # Yaw, pitch and roll of 20 degrees together (a 36 degree rotation) about the root joint
    # (global pose) or the neck joint (neck pose), with a 2 cm shift up or down.
    params = [
        flame.FlameParams(**{pose: combined(20, signs), "translation": [0.0, shift, 0.0]})
        for pose, signs, shift in [
            ("global_pose", (1, 1, 1), 0.02),
            ("global_pose", (-1, 1, -1), -0.02),
            ("neck_pose", (-1, -1, 1), 0.02),
            ("neck_pose", (1, -1, -1), -0.02),
        ]
    ]
    _, _, grids = build(head_model, params, frames=[])
    as64 = lambda name: np.asarray(getattr(grids, name), np.float64)
    bound = guide.neck_margin(
        *(as64(n) for n in ("rotation", "twist", "centre", "radius")),
        float(grids.fade),
        as64("neck_origin"),
        as64("neck_axis"),
        float(grids.neck_fade),
    )
    assert np.all(bound > 0), bound  # proven one-to-one for the motions in scope
    one = lambda p, f: guide.to_rest(grids, f[None], p[None, None])[0, 0]
    jacobians = jax.jit(jax.vmap(jax.jacfwd(one), in_axes=(0, None)))
    root = in_flame_units(head_model).rest_joints(params[:1])[0, 0]
    # Head, neck and shoulders on a 2 cm grid, the neck and the top of the torso on a 6 mm one.
    wide = guide.grid_points(root - [0.3, 0.15, 0.3], root + [0.3, 0.4, 0.3], 30)
    neck = guide.grid_points(root - [0.2, 0.06, 0.2], root + [0.2, 0.04, 0.2], 17)
    points = np.concatenate([wide.reshape(-1, 3), neck.reshape(-1, 3)]).astype(np.float32)
    for f in range(len(params)):
        det = np.linalg.det(np.asarray(jacobians(jnp.asarray(points), jnp.array(f))))
        assert det.min() > max(bound[f] - 1e-4, 0.0), (f, det.min(), bound[f])


def test_the_turning_capture_does_not_fold(head_model):
    # The generator's turning capture (seed 1, --head_motion 15): its most turned frames and
    # its widest jaw, with the procedural head, guide grids at 32^3.
    timeline = generator.make_timeline(64, 120, 16, 1, 15.0, 10)
    params = [flame.FlameParams.from_dict(p) for p in timeline.params]
    angles = [np.linalg.norm(p.global_pose) for p in params]
    jaw = [p.jaw_pose[0] for p in params]
    chosen = sorted({*np.argsort(angles)[-2:], int(np.argmax(jaw))})
    params = [params[i] for i in chosen]
    settings = guide.GuideSettings(0.008, 32, 0.002, True, 0.06, "neck", LEVEL, FADE)
    posed, _, grids = build(head_model, params, settings)
    stats = guide.folded_fraction(grids, posed, 0.008)
    assert np.all(stats.folded == 0), stats.summary()
    assert stats.rigid_margin > 0 and "one-to-one" in stats.summary()


def test_pose_shading_sees_the_rotation_above_the_neck_only():
    rotation = np.array([0.1, -0.2, 0.05], np.float32)
    grids = guide.GuideGrids(
        values=jnp.zeros((1, 2, 2, 2, 4), jnp.float16),
        lower=-jnp.ones(3),
        upper=jnp.ones(3),
        rigid=jnp.eye(3, 4)[None],
        rotation=-jnp.asarray(rotation)[None],
        centre=jnp.zeros((1, 3)),
        radius=jnp.array([0.2]),
        fade=jnp.asarray(0.4),
        twist=jnp.zeros((1, 3)),
        neck_origin=jnp.array([[0.0, -0.1, 0.0]]),
        neck_axis=jnp.array([[0.0, 1.0, 0.0]]),
        neck_fade=jnp.asarray(0.04),
    )
    # Above the fade in the ball; mid-fade; below it; beyond the ball's fade.
    points = jnp.array([[[0.0, 0.1, 0.0], [0.05, -0.08, 0.0], [0.0, -0.15, 0.0], [0.0, 0.7, 0.0]]])
    feature = np.asarray(guide.head_rotation_feature(grids, jnp.array([0]), points))
    expected = np.array([1.0, 0.5, 0.0, 0.0])[:, None] * rotation
    np.testing.assert_allclose(feature[0], expected, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Configuration: the demo's default; the Python default (the ball) left as it was.


def test_the_neck_fields_are_checked():
    assert configs.GuideConfig().rigid_weight == "ball"
    assert typing.get_args(configs.RigidWeight) == guide.RIGID_WEIGHTS
    neck = configs.GuideConfig(rigid_weight="neck", neck_level_m=-0.01, neck_fade_m=0.03)
    assert (neck.neck_level_m, neck.neck_fade_m) == (-0.01, 0.03)
    bad = [
        (dict(rigid_weight="cone"), r"rigid_weight: expected one of 'ball', 'neck', got 'cone'"),
        (dict(neck_level_m=2.0), r"neck_level_m: expected a finite number in \[-0.1, 0.1\]"),
        (dict(neck_fade_m=0.0), r"neck_fade_m: expected a finite number > 0, got 0.0"),
        (dict(rigid_weight="neck", undo_rigid=False), r"rigid_weight: expected 'ball' with undo"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            configs.GuideConfig(**kwargs)
    with pytest.raises(ValueError, match="GuideSettings.rigid_weight"):
        guide.GuideSettings(0.1, 8, 0.0, True, rigid_weight="cone")
    experiment.parse_gin(["demo.gin"], [])  # the demo's default
    built = configs.build_all()["GuideConfig"]
    assert (built.enabled, built.rigid_weight, built.neck_fade_m) == (True, "neck", 0.02)
    experiment.parse_gin(["demo.gin", "ablations/ball_rigid.gin"], [])
    assert configs.build_all()["GuideConfig"].rigid_weight == "ball"


def test_the_ball_is_still_the_python_default_and_unchanged(head_model):
    # The repr keys the grid cache: the "ball" settings' is the one from before the neck.
    assert repr(BALL) == (
        "GuideSettings(sigma=0.008, resolution=16, move_threshold=0.002, undo_rigid=True, "
        "rigid_fade=0.06)"
    )
    assert "neck_level=0.0, neck_fade=0.02" in repr(NECK)
    _, _, grids = build(head_model, MOTIONS[:1], BALL, frames=[])
    assert all(getattr(grids, n) is None for n in ("twist", "neck_origin", "neck_axis"))
    with pytest.raises(ValueError, match="'neck' rigid weight needs `neck`"):
        subject = in_flame_units(head_model)
        posed, neutral = subject.posed_and_neutral(MOTIONS[:1], True)
        guide.build_grids(posed, neutral, NECK, frames=[])


def test_an_experiment_builds_caches_and_compiles_the_neck_weight(tmp_path):
    capture = write_capture(tmp_path / "cap", num_train=3, num_val=1)
    bindings = [
        "GuideConfig.enabled = True",
        "GuideConfig.resolution = 8",
        "GuideConfig.rigid_weight = 'neck'",
    ]
    exp = experiment.Experiment.create(
        tmp_path / "exp", [TINY], bindings, data_dir=str(capture), write_config=False
    )
    extras = exp.extras()
    assert extras.guide.neck_axis is not None and exp.guide_stats.rigid_margin > 0
    # What the train step is compiled for ahead of the grids has the same structure.
    spec = exp.extras_spec()
    assert jax.tree.structure(spec) == jax.tree.structure(extras)
    for want, got in zip(jax.tree.leaves(spec), jax.tree.leaves(extras), strict=True):
        assert (want.shape, want.dtype) == (got.shape, got.dtype)
    # Cached with its neck fields; a second experiment reads the same grids.
    again = experiment.Experiment.create(
        tmp_path / "exp", [TINY], bindings, data_dir=str(capture), write_config=False
    )
    grids = again.guide_grids(show_progress=False)
    for name in ("values", "twist", "neck_origin", "neck_axis", "neck_fade"):
        np.testing.assert_array_equal(getattr(grids, name), getattr(extras.guide, name))
    # Another cache file than the "ball" weight's.
    ball = experiment.Experiment.create(
        tmp_path / "exp", [TINY], bindings[:2], data_dir=str(capture), write_config=False
    )
    assert ball.guide_grids(show_progress=False).neck_axis is None
