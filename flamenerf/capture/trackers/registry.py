# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The trackers `import-flame --from NAME` reads: one entry per tracker module.

To add a tracker importer, write `flamenerf/capture/trackers/NAME.py` holding its reader
(PATH -> `Track`), its documentation (the module docstring: a title line, a blank line, what
PATH may be) and `TRACKER = TrackerSpec(...)`, then add `NAME.TRACKER` to `_BUILT_IN` below.
Code outside the package (a plug-in, a test) calls `register(spec)` instead.
"""

from __future__ import annotations

from flamenerf.capture.trackers import deca, imavatar, insta, metrical, vhap
from flamenerf.capture.trackers.track import TrackerSpec

# --from NAME -> its spec, in the order --help lists them.
TRACKERS: dict[str, TrackerSpec] = {}


def register(spec: TrackerSpec) -> TrackerSpec:
    """Makes `spec` available to `import-flame --from spec.name`; returns it.

    Raises:
      ValueError: the name is empty, has whitespace, or is already registered.
    """
    if not spec.name or spec.name != "".join(spec.name.split()):
        raise ValueError(f"tracker name {spec.name!r}: expected a word without whitespace")
    if spec.name in TRACKERS:
        raise ValueError(f"tracker name {spec.name!r}: already registered")
    TRACKERS[spec.name] = spec
    return spec


_BUILT_IN = (vhap.TRACKER, metrical.TRACKER, insta.TRACKER, imavatar.TRACKER, deca.TRACKER)
for _spec in _BUILT_IN:
    register(_spec)
