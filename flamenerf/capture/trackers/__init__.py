# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Face trackers' outputs as per-frame FLAME parameters: `python -m flamenerf.capture import-flame`.

One module per tracker (`vhap`, `metrical`, `insta`, `imavatar`, `deca`) reads its files into a
`Track`; `registry` lists them for `--from`. The shared pieces: `track` (what a reader gives),
`parsing` (values with errors naming the file and field), `conventions` (trackers' rotation
and camera conventions), `nerf_export` (transforms.json), `matching` (tracker frames to
capture frames), `similarity` (to_world, Umeyama), `placement` (the head in the capture's
world), `capture_side` (the capture's model, cameras and scene defaults) and `command` (the
step's arguments and run).

Public API: the extension point (`TRACKERS`, `register`, `TrackerSpec`) and what a reader
returns (`Track`, `TrackerFrame`, `WeakPerspective`).
"""

from flamenerf.capture.trackers.registry import TRACKERS, register
from flamenerf.capture.trackers.track import Track, TrackerFrame, TrackerSpec, WeakPerspective

__all__ = ["TRACKERS", "Track", "TrackerFrame", "TrackerSpec", "WeakPerspective", "register"]
