# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rays: the RayBatch contract, random training batches and full-frame rays.

Training batches are drawn without replacement from every pixel of every training frame,
reshuffled each epoch (the order depends only on the seed and the epoch number). Frames are
read lazily from a `FrameSource` (the packed capture): an epoch visits the training frames in
a random order, `frames_per_group` at a time, and shuffles the pixels of each group, so only a
group's images are in memory at once. Rays are computed from the cameras on the fly. A
background thread keeps a few batches ready (`Prefetcher`).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from flamenerf.datasets.capture import Capture
from flamenerf.geometry.camera import Camera


class RayBatch(NamedTuple):
    """A batch of N rays (docs/architecture.md#raybatch). Leading dimension divisible by the device
    count.

    The same type holds numpy arrays on the host and jax arrays on the device mesh
    (`sharding.shard_batch`): it is the model's input (`FlameNerf.__call__`), a pytree.

    Attributes:
      origins: float32 (N, 3) ray origins, normalised scene frame.
      directions: float32 (N, 3) unit directions.
      rgb: float32 (N, 3) target colours in [0, 1] (zeros when rendering without targets).
      frame: int32 (N,) index of the frame in `capture.ids` (looks up its FLAME vertices).
      warp_id: int32 (N,) warp-code index.
      appearance_id: int32 (N,) appearance-code index.
      condition: float32 (N, C) the frame's expression coefficients (then jaw pose, if used).
      inside: float32 (N,) 1 inside the FLAME silhouette, else 0.
    """

    origins: np.ndarray
    directions: np.ndarray
    rgb: np.ndarray
    frame: np.ndarray
    warp_id: np.ndarray
    appearance_id: np.ndarray
    condition: np.ndarray
    inside: np.ndarray

    @property
    def num_rays(self) -> int:
        """N, the number of rays (`len` counts the fields, as for any NamedTuple)."""
        return self.origins.shape[0]


class FrameSource(Protocol):
    """Random access to frames by index into `capture.ids` (see `packing.FrameSource`)."""

    def __getitem__(self, index: int) -> dict[str, np.ndarray]: ...


class CaptureSource:
    """A FrameSource reading straight from the capture folder (no packing)."""

    def __init__(self, capture: Capture):
        self.capture = capture

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        frame_id = self.capture.ids[index]
        return {"image": self.capture.image(frame_id), "mask": self.capture.mask(frame_id)}


@dataclasses.dataclass(frozen=True)
class FrameTable:
    """Per-frame data every ray needs, indexed like `capture.ids`."""

    cameras: list[Camera]  # one per frame
    warp_id: np.ndarray  # int32 (F,)
    appearance_id: np.ndarray  # int32 (F,)
    condition: np.ndarray  # float32 (F, C)

    @classmethod
    def from_capture(cls, capture: Capture, jaw: bool) -> FrameTable:
        ids = capture.ids
        return cls(
            cameras=[capture.cameras[i] for i in ids],
            warp_id=np.array([capture.frames[i].warp_id for i in ids], np.int32),
            appearance_id=np.array([capture.frames[i].appearance_id for i in ids], np.int32),
            condition=np.stack([capture.condition(i, jaw) for i in ids]).astype(np.float32),
        )


def pixel_rays(
    table: FrameTable,
    frames: np.ndarray,
    pixels: np.ndarray,
    rgb: np.ndarray,
    inside: np.ndarray,
) -> RayBatch:
    """Rays through pixel centres of given frames.

    Args:
      table: per-frame cameras and codes.
      frames: int (N,) frame indices.
      pixels: int (N, 2) pixel indices (x, y); rays pass through (x + 0.5, y + 0.5).
      rgb: float32 (N, 3) colours; inside: (N,) silhouette bits.
    """
    origins = np.empty((len(frames), 3), np.float32)
    directions = np.empty((len(frames), 3), np.float32)
    for frame in np.unique(frames):
        rows = frames == frame
        o, d = table.cameras[frame].pixels_to_rays(pixels[rows] + 0.5)
        origins[rows], directions[rows] = o, d
    return RayBatch(
        origins=origins,
        directions=directions,
        rgb=rgb.astype(np.float32),
        frame=frames.astype(np.int32),
        warp_id=table.warp_id[frames],
        appearance_id=table.appearance_id[frames],
        condition=table.condition[frames],
        inside=inside.astype(np.float32),
    )


def camera_rays(
    camera: Camera,
    *,
    frame: int,
    warp_id: int,
    appearance_id: int,
    condition: np.ndarray,
    inside: np.ndarray,
    rgb: np.ndarray | None = None,
) -> RayBatch:
    """All H*W rays of one camera, row-major, for rendering a full image.

    Args:
      camera: the camera (normalised frame).
      frame, warp_id, appearance_id: indices shared by every ray.
      condition: float32 (C,) conditioning vector.
      inside: bool (H, W) silhouette.
      rgb: optional uint8 or float (H, W, 3) target image.
    """
    height, width = camera.image_shape
    origins, directions = camera.pixels_to_rays(camera.get_pixel_centers())
    n = height * width
    if rgb is None:
        colours = np.zeros((n, 3), np.float32)
    else:
        colours = _to_float(np.asarray(rgb).reshape(n, 3))
    full = lambda value, dtype: np.full((n,), value, dtype)
    return RayBatch(
        origins=origins.reshape(n, 3).astype(np.float32),
        directions=directions.reshape(n, 3).astype(np.float32),
        rgb=colours,
        frame=full(frame, np.int32),
        warp_id=full(warp_id, np.int32),
        appearance_id=full(appearance_id, np.int32),
        condition=np.broadcast_to(np.asarray(condition, np.float32), (n, len(condition))).copy(),
        inside=np.asarray(inside, np.float32).reshape(n),
    )


def frame_rays(
    capture: Capture, frame_id: str, jaw: bool, source: FrameSource | None = None
) -> RayBatch:
    """All rays of one frame of the capture with its target colours and silhouette."""
    index = capture.ids.index(frame_id)
    record = (source or CaptureSource(capture))[index]
    info = capture.frames[frame_id]
    return camera_rays(
        capture.cameras[frame_id],
        frame=index,
        warp_id=info.warp_id,
        appearance_id=info.appearance_id,
        condition=capture.condition(frame_id, jaw),
        inside=record["mask"],
        rgb=record["image"],
    )


def pad_to_multiple(batch: RayBatch, multiple: int) -> tuple[RayBatch, int]:
    """Pads a batch (repeating its last ray) to a multiple of `multiple`; returns (batch, n)."""
    n = batch.num_rays
    extra = -n % multiple
    if extra == 0:
        return batch, n
    return RayBatch(*[np.concatenate([f, np.repeat(f[-1:], extra, axis=0)]) for f in batch]), n


def split_chunks(batch: RayBatch, chunk: int) -> list[RayBatch]:
    """Consecutive slices of at most `chunk` rays."""
    return [RayBatch(*[f[i : i + chunk] for f in batch]) for i in range(0, batch.num_rays, chunk)]


def _to_float(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)


class RaySampler:
    """Endless random training batches, reshuffled every epoch, reproducible from a seed.

    Args:
      capture: the capture (its training frames are sampled).
      source: where frames are read from (a packed capture, or `CaptureSource`).
      batch_size: rays per batch (global); must be divisible by `num_shards`.
      seed: the shuffle seed; epoch e's order depends only on (seed, e).
      jaw: whether the conditioning vector carries the jaw pose.
      frames_per_group: training frames whose pixels are shuffled together (bounds memory);
        0 means all training frames.
      num_shards: the batch is later split evenly into this many parts (devices).
    """

    def __init__(
        self,
        capture: Capture,
        source: FrameSource,
        batch_size: int,
        seed: int = 0,
        jaw: bool = True,
        frames_per_group: int = 0,
        num_shards: int = 1,
    ):
        if batch_size <= 0 or batch_size % num_shards:
            raise ValueError(
                f"batch_size {batch_size} must be a positive multiple of the {num_shards} devices"
            )
        self.capture = capture
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.table = FrameTable.from_capture(capture, jaw)
        self.train_frames = np.array([capture.ids.index(i) for i in capture.train_ids])
        group = frames_per_group or len(self.train_frames)
        self.frames_per_group = min(group, len(self.train_frames))

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Yields (frames, pixels, rgb, inside) pools: shuffled pixels of one group of frames."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.train_frames)
        for start in range(0, len(order), self.frames_per_group):
            frames, pixels, rgb, inside = [], [], [], []
            for frame in order[start : start + self.frames_per_group]:
                record = self.source[int(frame)]
                image, mask = record["image"], record["mask"]
                height, width = mask.shape
                ys, xs = np.mgrid[0:height, 0:width]
                frames.append(np.full(height * width, frame, np.int32))
                pixels.append(np.stack([xs.ravel(), ys.ravel()], axis=-1))
                rgb.append(image.reshape(-1, 3))
                inside.append(mask.reshape(-1))
            perm = rng.permutation(sum(len(f) for f in frames))
            yield (
                np.concatenate(frames)[perm],
                np.concatenate(pixels)[perm],
                np.concatenate(rgb)[perm],
                np.concatenate(inside)[perm],
            )

    def __iter__(self) -> Iterator[RayBatch]:
        return self.batches()

    def batches(self, skip: int = 0) -> Iterator[RayBatch]:
        """Batches forever; a group's leftovers carry into the next group.

        Args:
          skip: batches to pass over first (resuming at step `skip` continues the exact
            stream of an uninterrupted run; skipped batches cost no ray computation).
        """
        carry = None
        epoch = 0
        count = 0
        while True:
            for pool in self.epoch(epoch):
                if carry is not None:
                    pool = tuple(np.concatenate([c, p]) for c, p in zip(carry, pool, strict=True))
                n = len(pool[0])
                full = n - n % self.batch_size
                first = min(max(skip - count, 0), full // self.batch_size) * self.batch_size
                count += first // self.batch_size
                for i in range(first, full, self.batch_size):
                    f, px, rgb, inside = (a[i : i + self.batch_size] for a in pool)
                    count += 1
                    yield pixel_rays(self.table, f, px, _to_float(rgb), inside)
                carry = tuple(a[full:] for a in pool)
            epoch += 1


class Prefetcher:
    """Runs `iterator` in a background thread, keeping up to `size` items ready.

    Iterate over it like the wrapped iterator; errors raised by the producer re-raise in the
    consumer. `close()` (or leaving a `with` block) stops the thread and waits for it, so that
    no half-finished batch is still computing in C++ code when the interpreter exits.
    """

    _END = object()

    def __init__(self, iterator: Iterator, size: int = 4) -> None:
        self._items: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._iterator = iterator
        self._thread = threading.Thread(target=self._produce, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        """Puts `item` unless asked to stop first; returns whether it was put."""
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._iterator:
                if not self._put(item):
                    return
        except BaseException as error:  # the consumer re-raises it
            self._put(error)
            return
        self._put(self._END)

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self):
        if self._stop.is_set():
            raise StopIteration
        item = self._items.get()
        if item is self._END:
            self._stop.set()
            raise StopIteration
        if isinstance(item, BaseException):
            self._stop.set()
            raise item
        return item

    def close(self) -> None:
        """Stops the producer and waits until its thread has finished."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def stack_batches(batches: Sequence[RayBatch]) -> RayBatch:
    """Concatenates batches along the ray axis."""
    return RayBatch(*[np.concatenate(fields) for fields in zip(*batches, strict=True)])
