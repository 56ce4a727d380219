# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Which tracker frame belongs to which capture frame.

A tracker frame is named by its file stem (image, .frame, .npz or folder) and, for VHAP, its
timestep_id (`TrackerFrame.names`). A capture id matches a name that is equal to it, or, when
both are all digits, equal as integers after adding the offset (--frame_offset) to the
tracker's number ("7" matches "00007"). A capture frame matched by two tracker frames is an
error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.track import TrackerFrame


def _match_keys(name: str, offset: int) -> set[tuple[str, Any]]:
    """Keys a name matches by: itself (unless an offset applies), its number plus `offset`."""
    keys: set[tuple[str, Any]] = set()
    if name.isascii() and name.isdigit():
        keys.add(("n", int(name) + offset))
        if offset == 0:
            keys.add(("s", name))
    else:
        keys.add(("s", name))
    return keys


def match_frames(
    ids: Sequence[str], frames: Sequence[TrackerFrame], offset: int = 0
) -> tuple[dict[str, TrackerFrame], int]:
    """Tracker frames of the capture's ids (see the module docstring).

    Returns:
      ({capture id: tracker frame} for the ids that match, number of tracker frames unused).

    Raises:
      StepError: a capture id matched by two tracker frames.
    """
    index: dict[tuple[str, Any], list[int]] = {}
    for k, frame in enumerate(frames):
        for key in set().union(*(_match_keys(name, offset) for name in frame.names)):
            index.setdefault(key, []).append(k)
    matched, used = {}, set()
    for frame_id in ids:
        hits = sorted({k for key in _match_keys(frame_id, 0) for k in index.get(key, [])})
        if len(hits) > 1:
            found = [frames[k].names for k in hits[:3]]
            raise StepError(f"capture frame '{frame_id}' matches several tracker frames {found}")
        if hits:
            matched[frame_id] = frames[hits[0]]
            used.add(hits[0])
    return matched, len(frames) - len(used)
