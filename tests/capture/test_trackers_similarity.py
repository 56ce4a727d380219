# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`flamenerf.capture.trackers.similarity`: Umeyama against exact and least-squares references."""

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation
from tracker_util import random_similarity

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.similarity import Similarity, umeyama


def test_umeyama_recovers_a_similarity_exactly():
    rng = np.random.default_rng(0)
    truth = random_similarity(rng)
    source = rng.normal(size=(6, 3))
    found = umeyama(source, truth.apply(source))
    np.testing.assert_allclose(found.scale, truth.scale, rtol=1e-12)
    np.testing.assert_allclose(found.rotation, truth.rotation, atol=1e-12)
    np.testing.assert_allclose(found.translation, truth.translation, atol=1e-12)


def test_umeyama_is_the_least_squares_optimum_with_noise():
    rng = np.random.default_rng(1)
    truth = random_similarity(rng)
    source = rng.normal(size=(8, 3))
    target = truth.apply(source) + rng.normal(scale=0.05, size=(8, 3))
    found = umeyama(source, target)
    # The rotation is the one align_vectors finds between the centred sets.
    rotation, _ = Rotation.align_vectors(target - target.mean(0), source - source.mean(0))
    np.testing.assert_allclose(found.rotation, rotation.as_matrix(), atol=1e-9)

    # A general least-squares solver over (rotation vector, log scale, translation) agrees.
    def residuals(x):
        similarity = Similarity(np.exp(x[3]), Rotation.from_rotvec(x[:3]).as_matrix(), x[4:])
        return (similarity.apply(source) - target).ravel()

    start = np.concatenate(
        [Rotation.from_matrix(truth.rotation).as_rotvec() + 0.1, [np.log(truth.scale) + 0.1]]
    )
    brute = least_squares(residuals, np.concatenate([start, truth.translation + 0.1]), xtol=1e-14)
    np.testing.assert_allclose(found.scale, np.exp(brute.x[3]), rtol=1e-6)
    np.testing.assert_allclose(found.translation, brute.x[4:], atol=1e-6)
    umeyama_cost = np.sum((found.apply(source) - target) ** 2)
    assert umeyama_cost <= 2 * brute.cost + 1e-12  # least_squares' cost is half the sum


def test_umeyama_refuses_collinear_centres():
    line = np.outer(np.arange(5.0), [1.0, 2.0, 0.5])
    with pytest.raises(StepError, match="line"):
        umeyama(line, line)
