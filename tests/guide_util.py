# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Shared by the FLAME guide's tests (tests/nerf/test_guide*.py)."""

from pathlib import Path

import numpy as np

from flamenerf.geometry.scene import Scene, ToWorld
from flamenerf.geometry.subject import Subject


def in_flame_units(head_model):
    """The head in a scene whose normalised frame is FLAME space (identity maps)."""
    scene = Scene(
        center=np.zeros(3),
        scale=1.0,
        near=0.0,
        far=1.0,
        flame_model=Path("flame_model.npz"),
        to_world=ToWorld(scale=1.0, rotation=np.eye(3), translation=np.zeros(3)),
        num_expression=head_model.num_expression,
        bbox=None,
    )
    return Subject(head_model, scene)


def build_in_flame_units(head_model, params, settings, frames=None):
    """Posed and neutral vertices of `params` and their guide grids (numpy), with FLAME space
    as the normalised frame; `frames`: the frames whose grids to build (default: all)."""
    from flamenerf.nerf import guide

    subject = in_flame_units(head_model)
    posed, neutral = subject.posed_and_neutral(params, settings.undo_rigid)
    grids = guide.build_grids(
        posed,
        neutral,
        settings,
        transforms=guide.head_transforms(subject, params),
        head=guide.head_vertices(head_model),
        frames=frames,
        neck=guide.neck_frame(subject, params, lambda x: x),
    )
    return posed, neutral, grids
