# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The ray pipeline: batches re-project to their pixels, epochs cover every pixel once."""

import itertools

import numpy as np
import pytest
from capture_util import write_capture

from flamenerf.datasets import capture as capture_lib
from flamenerf.datasets import packing, rays


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    root = write_capture(
        tmp_path_factory.mktemp("rays") / "cap",
        num_train=5,
        num_val=2,
        width=10,
        height=7,
        masks=True,
    )
    return capture_lib.load_capture(root)


@pytest.fixture(scope="module")
def source(capture, tmp_path_factory):
    return packing.pack_capture(
        capture, cache_dir=tmp_path_factory.mktemp("packs"), show_progress=False
    )


def test_packed_frames_equal_the_capture(capture, source):
    assert len(source) == len(capture.ids)
    for index, frame_id in enumerate(capture.ids):
        np.testing.assert_array_equal(source[index]["image"], capture.image(frame_id))
        np.testing.assert_array_equal(source[index]["mask"], capture.mask(frame_id))


def test_pack_is_cached(capture, tmp_path, monkeypatch):
    packing.pack_capture(capture, cache_dir=tmp_path, show_progress=False)

    def fail(self, frame_id):
        raise AssertionError("packed twice")

    monkeypatch.setattr(capture_lib.Capture, "image", fail)
    packing.pack_capture(capture, cache_dir=tmp_path, show_progress=False)


def test_batch_rays_reproject_to_their_pixels(capture, source):
    sampler = rays.RaySampler(capture, source, batch_size=24, seed=3, frames_per_group=2)
    batch = next(iter(sampler))
    assert batch.origins.shape == (24, 3) and batch.condition.shape == (24, 6)
    np.testing.assert_allclose(np.linalg.norm(batch.directions, axis=-1), 1.0, atol=1e-6)
    for k in range(batch.num_rays):
        frame_id = capture.ids[batch.frame[k]]
        assert frame_id in capture.train_ids
        camera = capture.cameras[frame_id]
        np.testing.assert_allclose(batch.origins[k], camera.position, atol=1e-6)
        u, v = camera.project(batch.origins[k] + 0.7 * batch.directions[k])
        x, y = int(np.floor(u)), int(np.floor(v))
        np.testing.assert_allclose([u, v], [x + 0.5, y + 0.5], atol=1e-4)
        np.testing.assert_allclose(batch.rgb[k], capture.image(frame_id)[y, x] / 255.0, atol=1e-6)
        assert batch.inside[k] == capture.mask(frame_id)[y, x]
        np.testing.assert_allclose(batch.condition[k], capture.condition(frame_id))
        assert batch.warp_id[k] == capture.frames[frame_id].warp_id


def pixel_keys(batches):
    keys = []
    for batch in batches:
        # Recover (frame, pixel) from the colour encoding of capture_util's images.
        red = np.round(batch.rgb[:, 0] * 255).astype(int)
        green = np.round(batch.rgb[:, 1] * 255).astype(int)
        keys += list(zip(batch.frame.tolist(), red.tolist(), green.tolist(), strict=True))
    return keys


def test_epochs_cover_every_pixel_once_and_reshuffle(capture, source):
    pixels_per_epoch = 5 * 7 * 10
    sampler = rays.RaySampler(capture, source, batch_size=50, seed=0, frames_per_group=2)
    batches = list(itertools.islice(iter(sampler), 2 * pixels_per_epoch // 50))
    first = pixel_keys(batches[: pixels_per_epoch // 50])
    second = pixel_keys(batches[pixels_per_epoch // 50 :])
    assert len(set(first)) == pixels_per_epoch and set(first) == set(second)
    assert first != second
    again = rays.RaySampler(capture, source, batch_size=50, seed=0, frames_per_group=2)
    assert pixel_keys(itertools.islice(iter(again), 3)) == first[:150]
    other = rays.RaySampler(capture, source, batch_size=50, seed=1, frames_per_group=2)
    assert pixel_keys(itertools.islice(iter(other), 3)) != first[:150]


def test_batch_must_divide_across_devices(capture, source):
    with pytest.raises(ValueError, match="batch_size 30 must be a positive multiple of the 4"):
        rays.RaySampler(capture, source, batch_size=30, num_shards=4)


def test_frame_rays_and_chunks(capture, source):
    full = rays.frame_rays(capture, "v01", jaw=False, source=source)
    assert full.num_rays == 70 and full.condition.shape == (70, 3)
    np.testing.assert_allclose(full.rgb.reshape(7, 10, 3), capture.image("v01") / 255.0)
    padded, n = rays.pad_to_multiple(full, 4)
    assert n == 70 and padded.num_rays == 72
    chunks = rays.split_chunks(padded, 16)
    assert [c.num_rays for c in chunks] == [16, 16, 16, 16, 8]
    np.testing.assert_array_equal(rays.stack_batches(chunks).origins, padded.origins)


def test_prefetch_yields_in_order_and_reraises():
    assert list(rays.Prefetcher(iter(range(10)), size=2)) == list(range(10))

    def broken():
        yield 1
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError, match="reader failed"):
        list(rays.Prefetcher(broken()))


def test_prefetch_close_stops_the_thread_mid_stream():
    produced = []

    def endless():
        for i in itertools.count():
            produced.append(i)
            yield i

    with rays.Prefetcher(endless(), size=2) as items:
        assert [next(items) for _ in range(3)] == [0, 1, 2]
    assert not items._thread.is_alive()
    count = len(produced)
    assert count <= 3 + 2 + 1  # consumed + queue + the one waiting to be put
    assert list(items) == []  # a closed prefetcher is exhausted
    assert len(produced) == count


def test_skip_resumes_the_exact_stream(capture, source):
    sampler = rays.RaySampler(capture, source, batch_size=48, seed=5, frames_per_group=2)
    stream = list(itertools.islice(sampler.batches(), 12))
    resumed = list(itertools.islice(sampler.batches(skip=7), 5))
    for a, b in zip(stream[7:], resumed, strict=True):
        np.testing.assert_array_equal(a.origins, b.origins)
        np.testing.assert_array_equal(a.rgb, b.rgb)
