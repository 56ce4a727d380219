# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""`flamenerf.capture.trackers.matching`: tracker frames to capture frames by name and number."""

import pytest

from flamenerf.capture.io import StepError
from flamenerf.capture.trackers.matching import match_frames
from flamenerf.capture.trackers.track import TrackerFrame
from flamenerf.geometry import flame


def test_frame_matching_by_name_and_number():
    frames = [
        TrackerFrame(("00007_00", "00007"), flame.FlameParams()),
        TrackerFrame(("8",), flame.FlameParams()),
        TrackerFrame(("intro",), flame.FlameParams()),
    ]
    matched, unused = match_frames(["7", "000008", "intro", "9"], frames)
    assert matched == {"7": frames[0], "000008": frames[1], "intro": frames[2]} and unused == 0
    matched, unused = match_frames(["8", "9"], frames, offset=1)
    assert matched == {"8": frames[0], "9": frames[1]} and unused == 1
    twins = [TrackerFrame(("3",), flame.FlameParams())] * 2
    with pytest.raises(StepError, match="'03' matches several tracker frames"):
        match_frames(["03"], twins)
