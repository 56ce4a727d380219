# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The whole bake (`bake.bake`, every stage in order) of an analytic soft sphere, alone and
in front of a wall (against its known surface and colours), its cache, and its options."""

import dataclasses

import numpy as np
import pytest
from export_util import SoftSphere, front_cameras, ring_cameras

from flamenerf.export import bake

RADIUS, SIGMA, RAMP = 0.5, 60.0, 0.02  # export_util.SoftSphere's defaults
WALL_Z, WALL_COLOUR = -1.5, np.array([0.2, 0.3, 0.9])

OPTIONS = dict(
    resolution=48,
    body_resolution=0,
    head_resolution=0,
    views=10,
    view_pixels=64,
    view_samples=96,
    colour_samples=32,
    min_component_faces=8,
)


def test_bake_of_a_soft_sphere(tmp_path):
    field = SoftSphere()
    box = (np.full(3, -1.0), np.full(3, 1.0))
    # Any view carves (quorum 1): the surface where the views' opacity reaches 0.3, to a
    # fraction of a cell (with the default 3, the third view's: up to a cell further out).
    options = bake.BakeOptions(**OPTIONS, room="surface", fog=0.0, quorum=1)
    baked = bake.bake(
        field, box, None, None, ring_cameras(), 1.0, 6.0, options, tmp_path, {"id": 1}
    )
    radius = np.linalg.norm(baked.vertices, axis=1)
    # Opacity 0.3 is reached sqrt(-2 ln(0.7) RAMP / SIGMA) into the soft edge seen head-on,
    # less deep seen obliquely (the best view of a point is up to about 30 degrees off).
    head_on = RADIUS + RAMP / 2 - np.sqrt(-2 * np.log(0.7) * RAMP / SIGMA)
    outer = RADIUS + RAMP / 2
    assert head_on - 0.005 < np.median(radius) < outer + 0.005
    assert head_on - 0.025 < radius.min() and radius.max() < outer + 0.025  # cells: 0.043
    outward = 0.5 + 0.5 * baked.vertices / radius[:, None]
    # The colour the best view's ray collects crossing the soft edge, near the vertex.
    colour_error = np.abs(baked.colours - outward)
    assert colour_error.max() < 0.08 and colour_error.mean() < 0.015
    assert baked.faces.shape[1] == 3 and baked.faces.max() < len(baked.vertices)
    calls = field.calls
    again = bake.bake(
        field, box, None, None, ring_cameras(), 1.0, 6.0, options, tmp_path, {"id": 1}
    )
    assert field.calls == calls  # the coloured mesh came from the cache
    np.testing.assert_array_equal(again.faces, baked.faces)
    # grow_m moves the surface out along its normals (units_per_metre is 1 here): the same
    # triangles, every vertex further out by the difference.
    grown = bake.bake(
        field,
        box,
        None,
        None,
        ring_cameras(),
        1.0,
        6.0,
        dataclasses.replace(options, grow_m=0.021),
        tmp_path,
        {"id": 1},
    )
    np.testing.assert_array_equal(grown.faces, baked.faces)
    growth = np.linalg.norm(grown.vertices, axis=1) - radius
    assert np.median(growth) == pytest.approx(0.02, abs=1e-3) and growth.min() > 0.01


def test_bake_with_a_backdrop(tmp_path):
    field = SoftSphere(wall_z=WALL_Z, wall_colour=WALL_COLOUR)
    box = (np.array([-3.0, -3.0, -2.0]), np.array([3.0, 3.0, 1.0]))
    body = (np.full(3, -0.7), np.full(3, 0.7))
    options = bake.BakeOptions(**OPTIONS, backdrop_pixels=24, backdrop_widen=1.2, thickness_m=0.1)
    cameras = front_cameras()
    baked = bake.bake(field, box, None, body, cameras, 1.0, 6.0, options)
    inside = np.all((baked.vertices >= body[0]) & (baked.vertices <= body[1]), axis=1)
    sphere = baked.vertices[inside]
    # The front of the sphere: its back is unseen, left open (skirts at most thickness_m deep).
    on_sphere = np.abs(np.linalg.norm(sphere, axis=1) - RADIUS) < 0.05
    assert on_sphere.mean() > 0.7 and sphere[on_sphere, 2].max() > 0.45
    assert sphere[:, 2].min() > -0.3
    room = baked.vertices[~inside]
    assert len(room) == 29 * 29  # one vertex per backdrop pixel (24 x 1.2, rounded up)
    assert np.abs(room[:, 2] - WALL_Z).max() < 0.1  # the wall, seen through the sphere too
    np.testing.assert_allclose(
        baked.colours[~inside], np.tile(WALL_COLOUR, (len(room), 1)), atol=0.02
    )


def test_options_are_checked():
    with pytest.raises(ValueError, match="surface"):
        bake.BakeOptions(surface="mesh")
    with pytest.raises(ValueError, match=r"BakeOptions\.expression: found 'neutral'"):
        bake.BakeOptions(expression="neutral")
    with pytest.raises(ValueError, match="opacity"):
        bake.BakeOptions(opacity=1.0)
    with pytest.raises(ValueError, match="views"):
        bake.BakeOptions(views=0)
    for bad in (dict(refine_frames=-1), dict(refine_pixels=4), dict(refine_supersample=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            bake.BakeOptions(**bad)
    with pytest.raises(ValueError, match="refine_weight"):
        bake.BakeOptions(refine_weight=0.0)
    with pytest.raises(ValueError, match="grow_m"):
        bake.BakeOptions(grow_m=float("nan"))
    # The mesh does not depend on the colour fit's options (its cache stays valid).
    options = bake.BakeOptions(refine_frames=3, refine_weight=0.5)
    assert options.mesh_dict() == bake.BakeOptions().mesh_dict()
    assert not any(k.startswith("refine_") for k in options.mesh_dict())
    assert bake.BakeOptions(grow_m=0.002).mesh_dict() != options.mesh_dict()


def test_cache_keys_change_with_the_bake_version(monkeypatch):
    from flamenerf.export import bake as bake_module

    key = bake_module.cache_key({"a": 1})
    assert bake_module.cache_key({"a": 1}) == key and bake_module.cache_key({"a": 2}) != key
    monkeypatch.setattr(bake_module, "BAKE_VERSION", bake_module.BAKE_VERSION + 1)
    assert bake_module.cache_key({"a": 1}) != key
