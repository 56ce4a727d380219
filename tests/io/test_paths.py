# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""One cache root: every reader resolves `$FLAMENERF_CACHE` (with `~`) to the same folder; local
paths and URLs (`as_path`) and the helpers for object stores, on a local GCS server."""

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import remote_util

from flamenerf.datasets import packing
from flamenerf.io import paths
from flamenerf.synthetic import generator as synthetic
from flamenerf.synthetic import head
from flamenerf.training import experiment

ROOT = Path(__file__).resolve().parents[2]
gcs_server, gcs_bucket = remote_util.gcs_server, remote_util.gcs_bucket  # fixtures


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME is a temporary folder; FLAMENERF_CACHE = "~/x" (so the cache is HOME/x)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FLAMENERF_CACHE", "~/x")
    return tmp_path


def test_cache_root_expands_the_tilde(home, monkeypatch):
    assert paths.cache_root() == home / "x"
    monkeypatch.setenv("FLAMENERF_CACHE", str(home / "elsewhere"))
    assert paths.cache_root() == home / "elsewhere"
    for unset in (None, ""):
        if unset is None:
            monkeypatch.delenv("FLAMENERF_CACHE")
        else:
            monkeypatch.setenv("FLAMENERF_CACHE", unset)
        assert paths.cache_root() == home / ".cache" / "flamenerf"


def test_head_is_cached_under_the_root(home, monkeypatch):
    monkeypatch.setattr(
        head.model_file, "write_head", lambda path: Path(path).write_bytes(b"") and path
    )
    assert head.default_head_path() == home / "x" / "head" / f"procedural_head_v{head.VERSION}.npz"
    assert head.default_head_path().is_file()


def test_synthetic_captures_are_cached_under_the_root(home, monkeypatch):
    monkeypatch.setattr(
        synthetic, "generate", lambda folder, **kwargs: (Path(folder) / "dataset.json").touch()
    )
    assert synthetic.cache_dir() == home / "x" / "captures"
    path = synthetic.default_capture(size=8, frames=2, val=1, show_progress=False)
    assert path.parent == home / "x" / "captures" and (path / "dataset.json").is_file()


# Stands for a capture's FLAME model: the cache keys read only its digest.
_MODEL = SimpleNamespace(digest=lambda: "model")


def test_packs_are_cached_under_the_root(home, monkeypatch):
    opened = []

    class Builder:
        def __init__(self, data_dir, **kwargs):
            self.data_dir = data_dir

        def download_and_prepare(self, **kwargs):
            opened.append(Path(self.data_dir))

    monkeypatch.setattr(packing, "CaptureFrames", Builder)
    monkeypatch.setattr(packing, "FrameSource", lambda data_dir: data_dir)
    (home / "capture").mkdir()
    capture = SimpleNamespace(root=home / "capture", scale=1, flame_model=_MODEL)
    data_dir = packing.pack_capture(capture, show_progress=False)
    assert opened == [home / "x" / "packed" / packing.capture_key(capture)] == [data_dir]


def test_guide_grids_are_cached_under_the_root(home):
    (home / "capture").mkdir()
    capture = SimpleNamespace(root=home / "capture", scale=1, flame_model=_MODEL)
    path = experiment.guide_cache_path(capture, "settings")
    assert path.parent == home / "x" / "guides" and path.suffix == ".npz"


def test_only_paths_reads_the_variable():
    """Nobody else computes the root (FLAMENERF_CACHE, ~/.cache, Path.home())."""
    pattern = re.compile(r"environ[^\n]*FLAMENERF_CACHE|\.cache[/\"' ]|Path\.home\(\)")
    readers = []
    for folder in ("flamenerf", "benchmarks", "colab"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".ipynb") and path != ROOT / "flamenerf" / "io" / "paths.py":
                text = path.read_text()
                # Docstrings and comments may say where the cache is; code may not build it.
                code = "\n".join(
                    line.split("#")[0] for line in text.splitlines() if '"""' not in line
                )
                if pattern.search(code):
                    readers.append(str(path.relative_to(ROOT)))
    assert readers == []
    for name in ("quickstart", "reanimate", "capture_processing"):
        assert "CACHE = cache_root()" in (ROOT / "colab" / f"{name}.ipynb").read_text()


# ------------------------------------------------------------------------------------------
# Local paths and URLs (as_path and the helpers for object stores).


class _PathLike:
    """An os.PathLike that is not a pathlib.Path."""

    def __init__(self, text):
        self.text = text

    def __fspath__(self):
        return self.text


@pytest.mark.parametrize("typed", ["exp", "runs/exp", "/tmp/exp", "./a:b", Path("rel/x")])
def test_local_paths_stay_pathlib_paths(typed):
    path = paths.as_path(typed)
    assert type(path) is type(Path()) and path == Path(typed)
    assert not paths.is_remote(typed) and paths.is_local(typed) and paths.scheme(typed) is None
    assert paths.as_path(_PathLike(str(typed))) == Path(typed)
    assert paths.resolve(typed) == Path(typed).resolve()


@pytest.mark.parametrize(
    "url, text",
    [
        ("gs://bucket/exp", "gs://bucket/exp"),
        ("gs://bucket/exp/", "gs://bucket/exp"),
        ("s3://bucket/a/capture", "s3://bucket/a/capture"),
        ("az://container/capture", "az://container/capture"),
    ],
)
def test_urls_become_epath_paths(url, text):
    from etils import epath

    path = paths.as_path(url)
    assert isinstance(path, epath.Path) and not isinstance(path, Path)
    assert str(path) == text and os.fspath(path) == text
    assert str(path / "config.gin") == text + "/config.gin" and str(path.parent) in text
    assert paths.is_remote(url) and paths.scheme(url) == url[:2]
    assert paths.as_path(path) is path and paths.as_path(_PathLike(url)) == path
    assert str(paths.resolve(url)) == text  # never joined to the working directory


@pytest.mark.parametrize(
    "typed, words",
    [
        ("gcs://bucket/exp", ["unknown file system gcs://", "gs://"]),
        ("http://host/exp", ["unknown file system http://"]),
        ("gs:/bucket/exp", ["missing or misspelt '//'", "did you mean gs://", "'gs:'"]),
        (Path("gs://bucket/exp"), ["gs:/bucket/exp", "did you mean gs://"]),  # pathlib's mangling
        ("s3:", ["did you mean s3://"]),
        ("gs:///exp", ["no bucket"]),
        ("gs://", ["no bucket"]),
    ],
)
def test_misspelt_urls_are_user_errors(typed, words, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(paths.UserError) as error:
        paths.as_path(typed)
    message = str(error.value)
    assert message.startswith(os.fspath(typed)) and "expected a local path or a URL" in message
    for word in words:
        assert word in message
    with pytest.raises(paths.UserError):
        paths.make_folder(typed)
    assert list(tmp_path.iterdir()) == []  # no local folder named "gs:" or "s3:"


def test_commands_of_local_folders_refuse_urls(capsys):
    import argparse

    assert paths.local_path("captures/a") == Path("captures/a")
    with pytest.raises(paths.UserError, match="local folders only"):
        paths.local_path("gs://bucket/capture")
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=paths.local_path_argument)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--out", "gs:/bucket/capture"])
    assert exit_.value.code == 2
    assert "argument --out: gs:/bucket/capture: looks like a URL" in capsys.readouterr().err


def test_local_helpers_write_as_before(tmp_path):
    folder = tmp_path / "a" / "b"
    paths.make_folder(folder)
    assert folder.is_dir()
    paths.append_text(folder / "m.jsonl", "1\n")
    paths.append_text(folder / "m.jsonl", "2\n")
    assert (folder / "m.jsonl").read_text() == "1\n2\n"
    paths.write_atomic(folder / "config.gin", "a = 1\n")
    paths.write_atomic(folder / "config.gin", "a = 2\n")
    assert (folder / "config.gin").read_text() == "a = 2\n"
    assert not (folder / "config.gin.tmp").exists()
    with paths.local_file(folder / "v.mp4") as local:
        assert local == folder / "v.mp4"
    (folder / "sub").mkdir()
    (folder / "sub" / "x.png").write_bytes(b"png")
    expected = []
    for path in sorted(folder.rglob("*")):  # the key packing.capture_key always hashed
        if path.is_file():
            stat = path.stat()
            expected.append((str(path.relative_to(folder)), stat.st_size, str(stat.st_mtime_ns)))
    assert paths.file_versions(folder) == expected
    assert [e[0] for e in expected] == ["config.gin", "m.jsonl", "sub/x.png"]
    assert paths.tensorboard_logdir(folder) == str(folder)


# On a Google Cloud Storage server on this machine (tests/remote_util.py).


def test_object_store_helpers(gcs_server, gcs_bucket):
    fs = gcs_server.fs
    root = f"gs://{gcs_bucket}/exp"
    paths.check_bucket(root)
    with pytest.raises(paths.UserError, match="bucket gs://no-such-bucket does not exist"):
        paths.check_bucket("gs://no-such-bucket/exp")
    paths.make_folder("gs://no-such-bucket/exp")  # object stores: no folders, no new bucket
    assert not fs.exists("no-such-bucket")

    paths.append_text(f"{root}/metrics.jsonl", '{"step": 1}\n')
    paths.append_text(f"{root}/metrics.jsonl", '{"step": 2}\n')
    assert fs.cat(f"{gcs_bucket}/exp/metrics.jsonl") == b'{"step": 1}\n{"step": 2}\n'
    paths.write_atomic(f"{root}/config.gin", "a = 1\n")  # directly: no rename on a bucket
    assert fs.cat(f"{gcs_bucket}/exp/config.gin") == b"a = 1\n"
    paths.write_atomic(f"gs://{gcs_bucket}/page/index.html", "caf\u00e9 \u2713", encoding="utf-8")
    assert fs.cat(f"{gcs_bucket}/page/index.html") == "caf\u00e9 \u2713".encode()

    with paths.local_file(f"{root}/renders/video.mp4") as local:
        assert isinstance(local, Path) and local.name == "video.mp4"
        local.write_bytes(b"mp4")
        local.with_suffix(".gif").write_bytes(b"gif")  # a file written beside it goes too
    assert not local.parent.exists()
    assert fs.cat(f"{gcs_bucket}/exp/renders/video.mp4") == b"mp4"
    assert fs.cat(f"{gcs_bucket}/exp/renders/video.gif") == b"gif"
    with pytest.raises(RuntimeError), paths.local_file(f"{root}/failed.mp4") as local:
        local.write_bytes(b"half")
        raise RuntimeError("ffmpeg failed")
    assert not fs.exists(f"{gcs_bucket}/exp/failed.mp4")

    versions = paths.file_versions(root)
    assert [(name, size) for name, size, _ in versions] == [
        ("config.gin", 6),
        ("metrics.jsonl", 24),
        ("renders/video.gif", 3),
        ("renders/video.mp4", 3),
    ]
    assert all(version for _, _, version in versions)
    fs.pipe(f"{gcs_bucket}/exp/renders/video.gif", b"GIF")  # same size, new version
    assert paths.file_versions(root)[2][2] != versions[2][2]


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C (google_crc32c: not tensorboardX's own implementation)."""
    import google_crc32c

    crc = int.from_bytes(google_crc32c.Checksum(data).digest(), "big")
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_event_folder(fs, folder):
    """[(tag, step, value)] of every scalar in a bucket folder, read as TensorBoard reads a
    run: every file with "tfevents" in its name, in name order, each a sequence of whole
    TFRecords (length, its CRC, an Event, its CRC; both CRCs checked), the first event of
    the first file the file version."""
    import struct

    from tensorboardX.proto import event_pb2

    names = sorted(n for n in fs.ls(folder) if "tfevents" in n.rsplit("/", 1)[-1])
    scalars, versions = [], []
    for name in names:
        data, position = fs.cat(name), 0
        while position < len(data):
            header = data[position : position + 8]
            (length,) = struct.unpack("<Q", header)
            (header_crc,) = struct.unpack("<I", data[position + 8 : position + 12])
            body = data[position + 12 : position + 12 + length]
            (body_crc,) = struct.unpack("<I", data[position + 12 + length : position + 16 + length])
            assert len(body) == length and header_crc == _masked_crc(header), (name, position)
            assert body_crc == _masked_crc(body), (name, position)
            event = event_pb2.Event.FromString(body)
            versions += [event.file_version] if event.file_version else []
            scalars += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
            position += 16 + length
    assert versions == ["brain.Event:2"], versions  # one event file, however many parts
    return scalars


def test_tensorboard_event_files_at_a_url(gcs_server, gcs_bucket):
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(paths.tensorboard_logdir(f"gs://{gcs_bucket}/exp/tensorboard"))
    writer.add_scalar("train/loss", 0.5, 3)
    writer.close()
    names = gcs_server.fs.ls(f"{gcs_bucket}/exp/tensorboard")
    assert names and all(n.split("/")[-1].startswith("events.out.tfevents.") for n in names)
    assert read_event_folder(gcs_server.fs, f"{gcs_bucket}/exp/tensorboard") == [
        ("train/loss", 3, 0.5)
    ]


def test_tensorboard_uploads_only_the_new_events_at_each_flush(gcs_server, gcs_bucket):
    """Each flush uploads what was written since the last one, as a new object: what a flush
    sends does not grow with the run, nothing uploaded is uploaded again, and after each flush
    the bucket holds every event written so far (measured on the server's listing)."""
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto import event_pb2, summary_pb2

    fs, folder = gcs_server.fs, f"{gcs_bucket}/exp/tensorboard"
    paths.tensorboard_logdir(f"gs://{folder}")  # registers the writer factory for gs://
    # tensorboardX's synchronous writer under SummaryWriter's thread: flushes when told.
    events = EventsWriter(f"gs://{folder}/events")
    written, uploaded, objects = [], [], {}
    for flush in range(8):
        for step in range(10 * flush, 10 * flush + 10):  # 10 scalars per flush period
            value = summary_pb2.Summary.Value(tag="train/loss", simple_value=1.0 / (step + 1))
            event = event_pb2.Event(step=step, wall_time=1.5, summary=summary_pb2.Summary())
            event.summary.value.append(value)
            events.write_event(event)
            written.append(("train/loss", step, value.simple_value))
        events.flush()
        listing = {i["name"]: (i["size"], str(i["generation"])) for i in fs.ls(folder, True)}
        assert {n: listing[n] for n in objects} == objects  # no object uploaded again
        uploaded.append(sum(size for n, (size, _) in listing.items() if n not in objects))
        objects = listing
        assert read_event_folder(fs, folder) == written  # every flushed scalar is there
    events.flush()  # nothing new: nothing sent
    events.close()
    assert fs.ls(folder, True) and len(fs.ls(folder)) == len(objects) == 8
    # The same events every period (steps < 128: the same size each): the same bytes per
    # flush; the first also carries the file version event. Re-uploading the whole file,
    # flush k would have sent k times this.
    assert len(set(uploaded[1:])) == 1 and uploaded[0] > uploaded[1] > 0
    assert sum(uploaded) == sum(size for size, _ in objects.values())


def test_urls_use_fsspec_even_where_tensorflow_is_importable():
    from etils.epath import backend

    assert os.environ["EPATH_USE_TF"] == "false"  # set by flamenerf.io.paths unless the user did
    for url in ("gs://bucket/exp", "s3://bucket/cap", "az://container/cap"):
        assert paths.as_path(url)._backend is backend.fsspec_backend, url
