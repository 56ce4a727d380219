# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Packs a capture's frames into a TFDS `array_record` dataset, read without TensorFlow.

tensorflow-datasets is the storage layer: `pack_capture` writes each frame (image and
FLAME-silhouette mask, at the capture's scale) as one record under the cache folder, and
`FrameSource` reads records by frame index through `tfds.data_source` (random access, no
TensorFlow). Images are stored as zlib-compressed uint8 tensors. Masks missing from the
capture are rasterised once here. The pack is keyed by the capture's path, scale and the
sizes and times of its files, so an edited capture is packed again; the capture itself is
never written to. A capture at a URL (gs://...) is packed into the same local cache.

Packing is quiet: nothing is downloaded (no GCS look-up), TFDS's "Downloading and preparing
dataset" / "downloaded and prepared" banners are not printed (`CaptureFrames` overrides the
two builder hooks that print them) and TFDS's own progress bars are off during the call only
(`_tfds_bars_off`; ours, tqdm, counts frames). The process's TFDS settings are left as found.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from tqdm.auto import tqdm

from flamenerf.datasets.capture import Capture
from flamenerf.io import paths

PACK_VERSION = "1.0.0"


def capture_key(capture: Capture) -> str:
    """A digest of the capture's path, scale and every file's size and time (a URL's: its
    objects' sizes and versions, from one listing; `paths.file_versions`), and of its FLAME
    model's arrays (`FlameModel.digest`: the model may live outside the capture folder, or be
    given with --flame_model, and the masks and guide grids depend on it)."""
    root = paths.resolve(capture.root)
    digest = hashlib.sha256(f"{root}|{capture.scale}|{PACK_VERSION}".encode())
    digest.update(f"|flame {capture.flame_model.digest()}".encode())
    for relative, size, version in paths.file_versions(capture.root):
        digest.update(f"{relative}|{size}|{version}".encode())
    return digest.hexdigest()[:16]


class CaptureFrames(tfds.core.GeneratorBasedBuilder):
    """One record per frame of a capture: index, id, image (H, W, 3) and mask (H, W)."""

    VERSION = tfds.core.Version(PACK_VERSION)

    def __init__(self, *, capture: Capture | None = None, show_progress: bool = True, **kwargs):
        self._capture = capture
        self._show_progress = show_progress
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Frames of a flamenerf capture at one image scale.",
            features=tfds.features.FeaturesDict(
                {
                    "index": tfds.features.Scalar(dtype=np.int32),
                    "id": tfds.features.Text(),
                    "image": tfds.features.Tensor(
                        shape=(None, None, 3), dtype=np.uint8, encoding="zlib"
                    ),
                    "mask": tfds.features.Tensor(
                        shape=(None, None), dtype=np.bool_, encoding="zlib"
                    ),
                }
            ),
            disable_shuffling=True,
        )

    # TFDS prints (termcolor, to stdout) a "Downloading and preparing dataset ..." banner
    # before and a "downloaded and prepared" line after `download_and_prepare`: meant for
    # downloaded datasets, noise for a local pack. These are the builder's own hooks for them.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"frames": self._generate_examples()}

    def _generate_examples(self):
        capture = self._capture
        ids = capture.ids
        for index, frame_id in enumerate(
            tqdm(ids, desc="packing frames", disable=not self._show_progress)
        ):
            record = {
                "index": index,
                "id": frame_id,
                "image": capture.image(frame_id),
                "mask": capture.mask(frame_id),
            }
            yield f"{index:08d}", record


class FrameSource:
    """Random access to a packed capture's frames, by index into `capture.ids`."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self._source = tfds.data_source("capture_frames", data_dir=str(data_dir), split="frames")

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """{'image': uint8 (H, W, 3), 'mask': bool (H, W)} of frame `index`."""
        record = self._source[int(index)]
        if int(record["index"]) != index:
            raise ValueError(f"{self.data_dir}: record {index} holds frame {record['index']}")
        return {"image": record["image"], "mask": record["mask"]}


@contextlib.contextmanager
def _tfds_bars_off() -> Iterator[None]:
    """TFDS's progress bars off inside the block; the previous setting restored after it.

    TFDS has one module-level switch (`tfds.display_progress_bar`) and no getter, hence the
    read of `tqdm_utils._active` (were it renamed, the bars would be switched on after).
    """
    from tensorflow_datasets.core.utils import tqdm_utils

    previous = getattr(tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)
    try:
        yield
    finally:
        tfds.display_progress_bar(previous)


def pack_capture(
    capture: Capture, cache_dir: Path | None = None, show_progress: bool = True
) -> FrameSource:
    """Packs the capture once (cached) and opens it.

    Args:
      capture: a loaded capture.
      cache_dir: where packs live; default `paths.cache_root() / "packed"`.
      show_progress: show a progress bar while packing.

    Returns:
      A FrameSource over every frame of `capture.ids`.
    """
    data_dir = (cache_dir or paths.cache_root() / "packed") / capture_key(capture)
    builder = CaptureFrames(
        capture=capture,
        show_progress=show_progress,
        data_dir=str(data_dir),
        file_format="array_record",
    )
    with _tfds_bars_off():  # TFDS's own bars; ours (tqdm) counts frames
        # A local pack: nothing to download, so no look-up of a prepared copy on GCS either.
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    return FrameSource(data_dir)
