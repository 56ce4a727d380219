# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Where flamenerf's files live: local folders or cloud URLs, and one cache root.

Experiment and capture folders may be local paths or URLs (`gs://BUCKET/PATH`, and for
captures `s3://` and `az://` too), read and written through `etils.epath`, whose backend for
URLs is fsspec (the user installs the plug-in: gcsfs, s3fs or adlfs). `as_path` is the one
door: a typed path becomes a `pathlib.Path` (local: behaviour exactly as before) or an
`epath.Path` (a URL), and a URL-like path with an unknown scheme or a lost slash (`gs:/b`,
what `pathlib.Path("gs://b")` makes of one) is a `UserError`, never a local folder named
`gs:`. The other helpers cover what object stores do differently: no folders to make
(`make_folder`), no rename (`write_atomic`), no append (`append_text`), no local file for
tools that need one
(`local_file`), listings with versions (`file_versions`), TensorBoard's event files
(`tensorboard_logdir`).

Everything derived from a capture stays local, under one cache root:

cache_root()/head/       the procedural FLAME-format head (flamenerf.synthetic.head)
cache_root()/captures/   synthetic captures (flamenerf.synthetic.generator)
cache_root()/packed/     TFDS array_record packs of captures (flamenerf.datasets.packing)
cache_root()/guides/     FLAME-guide grids (flamenerf.training.experiment)
cache_root()/jax/        JAX's persistent compilation cache (flamenerf.compilation_cache)
cache_root()/notebooks/  the Colab notebooks' outputs (colab/)
cache_root()/lpips/      the user's LPIPS weight files, unless --lpips_weights or
                         FLAMENERF_LPIPS says otherwise (flamenerf.evaluation.lpips)
cache_root()/mediapipe/  face_landmarker.task, put there by the user (flamenerf.capture.landmarks)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

# etils would switch URLs to TensorFlow's file client whenever TensorFlow is importable (a
# second client with its own credentials, and no az://): URLs go through fsspec, unless the
# user set EPATH_USE_TF themselves. Set before etils first resolves a URL's backend.
os.environ.setdefault("EPATH_USE_TF", "false")

from etils import epath

from flamenerf.errors import UserError

ENV = "FLAMENERF_CACHE"
DEFAULT = "~/.cache/flamenerf"

# URL schemes read and written through etils.epath (fsspec plug-ins gcsfs, s3fs, adlfs).
SCHEMES = ("gs", "s3", "az")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
# A first path component that ends in ":" ("gs:/bucket", "gcs:", "s3:"): a URL gone wrong.
_SCHEME_LIKE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(/|$)")

AnyPath = Path | epath.Path  # a local pathlib.Path or a URL's epath.Path
PathLike = str | os.PathLike


def cache_root() -> Path:
    """`$FLAMENERF_CACHE` (unset or empty: `~/.cache/flamenerf`), with `~` expanded.

    Read on every call, so a changed environment (tests, notebooks) takes effect at once.
    A relative value stays relative to the working directory.
    """
    return Path(os.environ.get(ENV) or DEFAULT).expanduser()


def _text(path: PathLike) -> str:
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"{path!r}: expected a str or os.PathLike of str, found bytes")
    return text


def is_remote(path: PathLike) -> bool:
    """True for a URL of a supported scheme (`SCHEMES`: gs://, s3://, az://)."""
    match = _URL.fullmatch(_text(path))
    return match is not None and match.group(1) in SCHEMES


def is_local(path: PathLike) -> bool:
    return not is_remote(path)


def scheme(path: PathLike) -> str | None:
    """The scheme of a URL ("gs", "s3" or "az"); None for a local path."""
    match = _URL.fullmatch(_text(path))
    return match.group(1) if match is not None and match.group(1) in SCHEMES else None


def as_path(path: PathLike) -> AnyPath:
    """A path as flamenerf reads and writes it: `epath.Path` for a URL, else `pathlib.Path`.

    Args:
      path: a str or os.PathLike: a local path (relative or absolute; `~` is not expanded,
        as before) or `SCHEME://BUCKET/PATH` with a scheme of `SCHEMES`. An `epath.Path`
        of a URL is returned as it is.

    Raises:
      UserError: a URL of another scheme (`gcs://`, `http://`), a URL without a bucket, or a
        path whose first component looks like a URL's scheme (`gs:/bucket/x`, what pathlib
        makes of `gs://bucket/x`, or `s3:`), which would otherwise become a local folder.
    """
    text = _text(path)
    expected = "expected a local path or a URL " + ", ".join(f"{s}://BUCKET/PATH" for s in SCHEMES)
    match = _URL.fullmatch(text)
    if match is not None:
        name, rest = match.groups()
        if name not in SCHEMES:
            hint = " (Google Cloud Storage is gs://)" if name.lower() in ("gcs", "gcp") else ""
            raise UserError(f"{text}: unknown file system {name}://{hint}; {expected}")
        if not rest.split("/", 1)[0]:
            raise UserError(f"{text}: no bucket after {name}://; {expected}")
        return path if isinstance(path, epath.Path) and str(path) == text else epath.Path(text)
    odd = _SCHEME_LIKE.match(text)
    if odd is not None:
        name = odd.group(1)
        fix = f" (did you mean {name}://...?)" if name in SCHEMES else ""
        raise UserError(
            f"{text}: looks like a URL with a missing or misspelt '//'{fix}, not a local "
            f"folder named '{name}:'; {expected}"
        )
    return Path(text)


def local_path(path: PathLike, what: str = "this command") -> Path:
    """A local path for a command that only reads and writes local files.

    Raises:
      UserError: a URL (`as_path` accepts it; `what` does not) or a malformed one.
    """
    result = as_path(path)
    if not isinstance(result, Path):
        raise UserError(f"{path}: {what} reads and writes local folders only, not URLs")
    return result


def local_path_argument(text: str) -> Path:
    """`local_path` as an argparse `type=`: a URL is an error naming the argument."""
    try:
        return local_path(text, "this command")
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def resolve(path: PathLike) -> AnyPath:
    """An absolute path: a local one resolved (`Path.resolve`), a URL as it is."""
    result = as_path(path)
    return result.resolve() if isinstance(result, Path) else result


def make_folder(path: PathLike) -> None:
    """Makes a local folder (and its parents) if needed. Object stores have no folders: for
    a URL nothing is done (a missing bucket is never created; the first write fails)."""
    result = as_path(path)
    if isinstance(result, Path):
        result.mkdir(parents=True, exist_ok=True)


def write_atomic(path: PathLike, text: str, encoding: str | None = None) -> None:
    """Writes a text file whole, never leaving it half-written.

    Local: written to `NAME.tmp` beside it, then renamed over it. A URL: written directly (an
    object appears only once its upload completes; object stores have no cheap rename).
    """
    result = as_path(path)
    if isinstance(result, Path):
        tmp = result.with_name(result.name + ".tmp")
        tmp.write_text(text, encoding=encoding)
        tmp.replace(result)
    else:
        result.write_bytes(text.encode(encoding or "utf-8"))


def append_text(path: PathLike, text: str) -> None:
    """Appends `text` to a file (made if missing). An object cannot be appended to: a URL's
    file is read and written again whole (fine for metrics.jsonl's few lines per minute)."""
    result = as_path(path)
    if isinstance(result, Path):
        with open(result, "a") as f:
            f.write(text)
        return
    old = result.read_text() if result.exists() else ""
    result.write_text(old + text)


@contextlib.contextmanager
def local_file(path: PathLike) -> Iterator[Path]:
    """A local path to write `path` through, for tools that only write local files (ffmpeg).

    Local: `path` itself. A URL: a file of the same name in a temporary folder, uploaded to
    `path` when the block ends without an exception (the temporary folder is removed in any
    case). Files the tool writes beside it (e.g. a fallback `.gif`) are uploaded beside
    `path` too.
    """
    result = as_path(path)
    if isinstance(result, Path):
        yield result
        return
    with tempfile.TemporaryDirectory(prefix="flamenerf_upload_") as folder:
        local = Path(folder) / result.name
        yield local
        for written in sorted(Path(folder).iterdir()):
            if written.is_file():
                (result.parent / written.name).write_bytes(written.read_bytes())


def file_versions(root: PathLike) -> list[tuple[str, int, str]]:
    """(path relative to `root`, size, version) of every file under `root`, sorted by path.

    The version is the modification time in ns (local files) or what the object store keeps
    for the object (its generation, ETag or time), read from one listing (no request per
    file). Used to key caches derived from a capture.
    """
    result = as_path(root)
    if isinstance(result, Path):
        found = []
        for path in sorted(result.rglob("*")):
            if path.is_file():
                stat = path.stat()
                found.append((str(path.relative_to(result)), stat.st_size, str(stat.st_mtime_ns)))
        return found
    import fsspec

    fs, base = fsspec.core.url_to_fs(str(result))
    base = base.rstrip("/")
    listing = fs.find(base, detail=True)
    found = []
    for name, info in sorted(listing.items()):
        if info.get("type", "file") != "file" or not name.startswith(base + "/"):
            continue
        version = next(
            (
                str(info[key])
                for key in ("generation", "ETag", "etag", "md5Hash", "mtime", "LastModified")
                if info.get(key) is not None
            ),
            "",
        )
        found.append((name[len(base) + 1 :], int(info.get("size") or 0), version))
    return found


def check_bucket(path: PathLike) -> None:
    """For a URL, checks that its bucket can be reached (nothing for a local path).

    Raises:
      UserError: no such bucket, or it cannot be reached (credentials, network), naming it.
    """
    result = as_path(path)
    if isinstance(result, Path):
        return
    name = scheme(result)
    bucket = str(result)[len(name) + 3 :].split("/", 1)[0]
    root = epath.Path(f"{name}://{bucket}")
    try:
        found = root.exists()
    except Exception as error:  # credentials, network, a missing plug-in: one line
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise UserError(f"{path}: cannot reach the bucket {root} ({reason})") from None
    if not found:
        raise UserError(f"{path}: the bucket {root} does not exist (or is not visible)")


# ------------------------------------------------------------------------------------------
# TensorBoard event files on an object store.


class _RemoteEventFile:
    """One TensorBoard event file at a URL, uploaded a part per flush.

    An object cannot be appended to, and uploading the whole file again at every flush (every
    `flush_secs`, 2 minutes by default) would send the run's whole history each time, more
    the longer it runs. Each flush uploads only the records written since the last one, as
    an event file of its own: PATH (up to the first flush), then PATH.000001, PATH.000002, ...
    A part is never written again, holds whole records (tensorboardX's EventsWriter writes a
    record and flushes under one lock) and its name sorts after the earlier ones, so
    TensorBoard, which reads every `*tfevents*` file of the folder in name order, sees the
    events as from one file. When a flush returns, everything written so far is in the
    bucket; a failed upload raises and the next flush sends its records again, with the new
    ones, under the same name.
    """

    def __init__(self, path: str):
        self._path = as_path(path)
        self._buffer = io.BytesIO()
        self._parts = 0  # parts uploaded

    def write(self, data: bytes) -> None:
        self._buffer.write(data)

    def flush(self) -> None:
        data = self._buffer.getvalue()
        if not data:  # nothing new since the last upload: no empty part
            return
        name = self._path.name + (f".{self._parts:06d}" if self._parts else "")
        (self._path.parent / name).write_bytes(data)
        self._parts += 1
        self._buffer = io.BytesIO()

    def close(self) -> None:
        self.flush()


class _RemoteEventFiles:
    """tensorboardX's writer factory for a URL scheme (`record_writer.register_writer_factory`)."""

    def open(self, path: str) -> _RemoteEventFile:
        return _RemoteEventFile(path)

    def directory_check(self, path: str) -> None:
        del path  # object stores have no folders to make


def tensorboard_logdir(folder: PathLike) -> str:
    """The `logdir` to give tensorboardX's `SummaryWriter` for `folder`.

    Local: the folder's path (tensorboardX makes it). A URL: the URL, after registering
    tensorboardX's writer factory for its scheme with one that writes through `epath`, as
    every other file of flamenerf (the same credentials and fsspec settings; tensorboardX's
    own writers would use boto3 or google-cloud-storage directly), and uploads at each flush
    only the events written since the previous one, as a new event file (`_RemoteEventFile`).
    """
    result = as_path(folder)
    if isinstance(result, Path):
        return str(result)
    from tensorboardX import record_writer

    record_writer.register_writer_factory(scheme(result), _RemoteEventFiles())
    return str(result)
