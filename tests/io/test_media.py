# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.io.media: videos as mp4 (odd sizes padded), or a GIF without ffmpeg."""

import numpy as np
import pytest
from PIL import Image

from flamenerf.io import media as video


def test_video_falls_back_to_a_gif_without_ffmpeg(tmp_path, monkeypatch):
    frames = [np.full((5, 7, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    monkeypatch.setattr(video, "ffmpeg_path", lambda: None)
    result = video.write_video(tmp_path / "video.mp4", frames, fps=10)
    assert result.path == tmp_path / "video.gif" and "no ffmpeg" in result.note
    with Image.open(result.path) as gif:
        assert gif.n_frames == 3 and gif.size == (7, 5)


def test_video_writes_an_mp4_with_odd_sizes(tmp_path):
    if video.ffmpeg_path() is None:
        pytest.skip("no ffmpeg binary")
    import mediapy

    frames = [np.full((5, 7, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    result = video.write_video(tmp_path / "video.mp4", frames, fps=10)
    assert result.path == tmp_path / "video.mp4" and result.note == ""
    assert mediapy.read_video(result.path).shape == (3, 6, 8, 3)  # padded to even sizes
