# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""What a tracker reader gives (`Track` of `TrackerFrame`s) and how a tracker is described.

A reader turns a tracker's output files into a `Track`: per-frame FLAME parameters in the
tracker's world, with the tracker's camera of each frame (OpenCV axes) or DECA's weak
perspective. A `TrackerSpec` names the reader for `import-flame --from NAME` and carries its
documentation and the few facts the command needs about it (see `registry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from flamenerf.geometry import flame
from flamenerf.geometry.camera import Camera


@dataclasses.dataclass(frozen=True)
class WeakPerspective:
    """DECA's camera of one frame.

    Attributes:
      cam: (3,) [s, tx, ty]: crop xy = s * (X_xy + t) in [-1, 1], y up.
      tform: (3, 3) similarity from image pixels to 224x224 crop pixels.
    """

    cam: np.ndarray
    tform: np.ndarray


@dataclasses.dataclass(frozen=True)
class TrackerFrame:
    """One tracked frame.

    Attributes:
      names: names the frame may be matched by (file stem, timestep id).
      params: FLAME parameters as float64 numpy arrays (None = missing), in the tracker's world.
      camera: the tracker's camera (OpenCV axes, tracker world), or None.
      weak_perspective: DECA's camera, or None.
    """

    names: tuple[str, ...]
    params: flame.FlameParams
    camera: Camera | None = None
    weak_perspective: WeakPerspective | None = None


@dataclasses.dataclass(frozen=True)
class Track:
    """A tracker's output.

    Attributes:
      frames: the tracked frames.
      flame_scale: tracker world units per FLAME unit (4 for IMavatar, else 1).
      notes: what the tracker lacks or what was left out, printed by the importer.
    """

    frames: list[TrackerFrame]
    flame_scale: float = 1.0
    notes: tuple[str, ...] = ()


# (capture ids, their matched parameters, PATH as given) -> the one shape vector of every frame.
SharedShape = Callable[[Sequence[str], Sequence[flame.FlameParams], str], np.ndarray]


@dataclasses.dataclass(frozen=True)
class TrackerSpec:
    """One tracker `import-flame --from NAME` can read.

    Attributes:
      name: the value of --from.
      title: the tracker's name in prose (the command's one-line help lists them).
      doc: the tracker module's docstring: a title line, a blank line, then what PATH may be
        and what the tracker gives (`path_help`, shown under "TRACKER and PATH" in the
        command's --help, indented by 12 spaces: lines of at most 88 characters).
      read: PATH -> Track. When `image_size_reason` is set it is called as
        read(PATH, (width, height)) with the size of the capture's rgb/1x frames.
      image_size_reason: why the reader needs the capture's image size (the end of the error
        when the capture has no frame images); None: it does not.
      shared_shape: when set and --identity is not given, every frame's shape is replaced by
        what it returns (DECA estimates a shape per frame and averages them).
    """

    name: str
    title: str
    doc: str | None
    read: Callable[..., Track]
    image_size_reason: str | None = None
    shared_shape: SharedShape | None = None

    @property
    def path_help(self) -> str:
        """`doc` without its title line: what PATH may be ("" when docstrings are stripped)."""
        return (self.doc or "").partition("\n\n")[2].strip("\n")
