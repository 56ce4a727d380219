# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.io.media: videos as mp4 (odd sizes padded), or a GIF without ffmpeg."""

import importlib.metadata

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


def test_the_bundled_ffmpeg_reads_what_we_write(tmp_path, monkeypatch):
    """The imageio-ffmpeg pin (setup.py: <0.8) and why: mediapy.read_video passes `-vsync`,
    which the ffmpeg 9 binary of imageio-ffmpeg 0.8 rejects ("Unrecognized option 'vsync'")."""
    import imageio_ffmpeg
    import mediapy

    version = importlib.metadata.version("imageio-ffmpeg")
    assert tuple(int(part) for part in version.split(".")[:2]) < (0, 8), (
        f"imageio-ffmpeg {version}: 0.8 ships ffmpeg 9, which removed the -vsync option that "
        "mediapy.read_video passes; keep imageio-ffmpeg<0.8 (setup.py) until mediapy drops it"
    )
    # The wheel's binary, not Debian's: the one a machine without ffmpeg runs.
    monkeypatch.setattr(mediapy._config, "ffmpeg_name_or_path", imageio_ffmpeg.get_ffmpeg_exe())
    monkeypatch.setattr(video, "ffmpeg_path", imageio_ffmpeg.get_ffmpeg_exe)
    frames = [np.full((6, 8, 3), v, np.uint8) for v in (0, 128, 255)]
    result = video.write_video(tmp_path / "video.mp4", frames, fps=10)
    assert result.path == tmp_path / "video.mp4" and result.note == ""
    read = mediapy.read_video(result.path)
    assert read.shape == (3, 6, 8, 3) and read.metadata.fps == 10
    np.testing.assert_allclose(read.mean(axis=(1, 2, 3)), [0, 128, 255], atol=3)
