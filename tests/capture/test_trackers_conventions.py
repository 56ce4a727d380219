# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`flamenerf.capture.trackers.conventions`: 6-D rotations against PyTorch3D's definition."""

import numpy as np
from scipy.spatial.transform import Rotation

from flamenerf.capture.trackers.conventions import rotation_6d_to_matrix


def pytorch3d_rotation_6d_to_matrix(d6):
    """PyTorch3D's definition, one vector at a time: Gram-Schmidt, b1, b2, b3 stacked on dim -2."""
    a1, a2 = np.asarray(d6[:3], float), np.asarray(d6[3:], float)
    b1 = a1 / np.sqrt(a1 @ a1)
    b2 = a2 - (b1 @ a2) * b1
    b2 = b2 / np.sqrt(b2 @ b2)
    b3 = np.array(
        [
            b1[1] * b2[2] - b1[2] * b2[1],
            b1[2] * b2[0] - b1[0] * b2[2],
            b1[0] * b2[1] - b1[1] * b2[0],
        ]
    )
    matrix = np.empty((3, 3))
    for row, vector in enumerate((b1, b2, b3)):
        matrix[row, :] = vector
    return matrix


def test_rotation_6d_matches_pytorch3d():
    rng = np.random.default_rng(2)
    d6 = rng.normal(size=(5, 6))
    expected = np.stack([pytorch3d_rotation_6d_to_matrix(v) for v in d6])
    np.testing.assert_allclose(rotation_6d_to_matrix(d6), expected, atol=1e-12)
    # PyTorch3D's matrix_to_rotation_6d keeps the first two rows: the inverse of the above.
    rotations = Rotation.random(4, random_state=rng).as_matrix()
    np.testing.assert_allclose(
        rotation_6d_to_matrix(rotations[:, :2].reshape(4, 6)), rotations, atol=1e-12
    )
