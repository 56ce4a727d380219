# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""PyTorch files read without torch: `torch.save` zip archives and legacy checkpoints.

Two layouts exist, and real weight files use both:

* the zip archive (torch >= 1.6): `PREFIX/data.pkl` (the pickled object), `PREFIX/data/KEY`
  (each storage's raw bytes), `PREFIX/byteorder` ("little"; absent in older archives, which
  are little-endian), `PREFIX/version` and a few more records that are not needed;
* the legacy file (torch < 1.6; the `lpips` package's `weights/v0.1/*.pth` and torchvision's
  `alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth`): five pickles in a row (the magic number
  0x1950a86a20f9469cfc6c, the protocol version 1001, a system-info dict with `little_endian`,
  the object, the list of storage keys), then for each of those keys, in that order, the
  storage's element count (int64, little-endian) and its raw bytes.

Every pickle goes through `flamenerf.io.safe_pickle` (the pre-scan against bombs, then the
restricted unpickler with the format's allow-list, then `check_tree`): metrical-tracker frames
with `TORCH_FRAME` (numpy arrays only, tensors refused), state dicts with `TORCH_CHECKPOINT`
(tensors as inert records; `os.system` or any other global is refused before it runs). A
storage's bytes are only copied for the tensors asked for (a VGG-16 checkpoint is 528 MB,
of which the convolutional features LPIPS needs are 59 MB), after checking that the record or
the legacy tail holds exactly the bytes its persistent id declares.

Errors are `UserError`s (`TorchFileError`, `safe_pickle.PickleRefused`) naming the file.
"""

from __future__ import annotations

import mmap
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.errors import UserError
from flamenerf.io import safe_pickle

MAX_PICKLE_BYTES = 1 << 28  # 256 MiB: the object pickle of a checkpoint is a few kilobytes
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION
_LEGACY_START = b"\x80\x02\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little")  # protocol 2
_INT64 = np.dtype("<i8")


class TorchFileError(UserError):
    """A file that is not a readable torch checkpoint; the message names the file."""


def _stored_record(path: Path, archive: zipfile.ZipFile, name: str) -> bytes:
    """A record's bytes. torch.save stores records uncompressed; a compressed one could
    inflate a small file into gigabytes, so it is refused."""
    if archive.getinfo(name).compress_type != zipfile.ZIP_STORED:
        raise TorchFileError(f"{path}: record {name} is compressed; torch.save stores records")
    return archive.read(name)


def _zip_payload(
    path: Path, archive: zipfile.ZipFile, fmt: safe_pickle.PickleFormat, persistent: Any = None
) -> tuple[Any, str]:
    """The unpickled `data.pkl` of an open archive and the records' prefix (`archive/`)."""
    names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(names) != 1:
        raise TorchFileError(f"{path}: expected one data.pkl in the torch.save archive")
    if archive.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
        raise TorchFileError(f"{path}: data.pkl is larger than {MAX_PICKLE_BYTES} bytes")
    data = _stored_record(path, archive, names[0])
    payload = safe_pickle.loads(data, str(path), fmt, persistent)
    safe_pickle.check_tree(payload, str(path), fmt)
    return payload, names[0][: -len("data.pkl")]


def read_torch_zip(
    path: str | Path, fmt: safe_pickle.PickleFormat = safe_pickle.TORCH_FRAME
) -> Any:
    """The object of a torch.save zip archive (`PREFIX/data.pkl`) that holds no tensors.

    data.pkl is read by `flamenerf.io.safe_pickle` with the format's allow-list (default
    `TORCH_FRAME`: numpy arrays and scalars of plain dtypes and `_codecs.encode`); every other
    global, torch's persistent storages and pickle bombs are refused before anything runs or
    is allocated, and the result must be a small tree of dicts, lists, arrays, strings and
    numbers (`safe_pickle.check_tree`).

    Raises:
      UserError: naming the file: not found, not a zip archive, no single data.pkl, or a
        refused or unreadable pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise TorchFileError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as archive:
            return _zip_payload(path, archive, fmt)[0]
    except zipfile.BadZipFile:
        raise TorchFileError(f"{path}: not a torch.save zip archive") from None
    except UserError:
        raise
    except Exception as error:  # zipfile's many ways to fail on a damaged archive
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: Exception) -> TorchFileError:
    """A damaged archive: zipfile raises BadZipFile, but also NotImplementedError (an unknown
    compression method or version), RuntimeError (encryption), zlib.error, EOFError, ..."""
    text = str(error)[:120]
    return TorchFileError(f"{path}: unreadable torch.save archive ({type(error).__name__}: {text})")


# ------------------------------------------------------------------------------------------
# State dicts.


def _tensors(path: Path, payload: Any) -> dict[str, safe_pickle.TorchTensor]:
    """The state dict's {name: tensor}; anything else in it is refused."""
    if not isinstance(payload, dict):
        raise TorchFileError(
            f"{path}: holds a {type(payload).__name__}; expected a state dict "
            "(a dict of tensor names to tensors)"
        )
    tensors = {}
    for key, value in payload.items():
        if type(key) is not str or type(value) is not safe_pickle.TorchTensor:
            raise TorchFileError(
                f"{path}: state dict entry {key!r} is a {type(value).__name__}; expected a tensor"
            )
        tensors[key] = value
    return tensors


def _selected(
    path: Path, tensors: dict[str, safe_pickle.TorchTensor], keys: Iterable[str] | None
) -> dict[str, safe_pickle.TorchTensor]:
    if keys is None:
        return tensors
    keys = list(keys)
    missing = [k for k in keys if k not in tensors]
    if missing:
        raise TorchFileError(
            f"{path}: no tensor {missing[0]!r} in the state dict (it has {len(tensors)}: "
            f"{', '.join(list(tensors)[:6])}{', ...' if len(tensors) > 6 else ''})"
        )
    return {k: tensors[k] for k in keys}


def _read_zip_state_dict(path: Path, keys: Iterable[str] | None) -> dict[str, np.ndarray]:
    storages = safe_pickle.TorchStorages()
    with zipfile.ZipFile(path) as archive:
        payload, prefix = _zip_payload(path, archive, safe_pickle.TORCH_CHECKPOINT, storages)
        if f"{prefix}byteorder" in archive.namelist():
            order = archive.read(f"{prefix}byteorder").strip()
            if order != b"little":
                raise TorchFileError(
                    f"{path}: byteorder is {order[:16]!r}; only little-endian checkpoints are read"
                )
        wanted = _selected(path, _tensors(path, payload), keys)
        for tensor in wanted.values():
            storage = tensor.storage.root
            if storage.data is not None:
                continue
            name = f"{prefix}data/{storage.key}"
            expected = storage.numel * storage.dtype.itemsize
            try:
                size = archive.getinfo(name).file_size
            except KeyError:
                raise TorchFileError(
                    f"{path}: no record {name} for storage '{storage.key}'"
                ) from None
            if size != expected:
                raise TorchFileError(
                    f"{path}: record {name} has {size} bytes; its storage of {storage.numel} "
                    f"x {storage.dtype.str} needs {expected}"
                )
            storage.data = np.frombuffer(_stored_record(path, archive, name), storage.dtype)
        return {k: t.to_numpy(f"{path}: {k!r}") for k, t in wanted.items()}


def _legacy_pickle(path: Path, data: Any, start: int, fmt: Any, persistent: Any = None) -> Any:
    """One pickle of a legacy file, from `start`: (object, the offset after it)."""
    end = safe_pickle.prescan(data, str(path), fmt, start)
    if end - start > MAX_PICKLE_BYTES:
        raise TorchFileError(f"{path}: a pickle of more than {MAX_PICKLE_BYTES} bytes")
    value = safe_pickle.loads(data[start:end], str(path), fmt, persistent)
    safe_pickle.check_tree(value, str(path), fmt)
    return value, end


def _read_legacy_state_dict(
    path: Path, data: Any, keys: Iterable[str] | None
) -> dict[str, np.ndarray]:
    fmt = safe_pickle.TORCH_CHECKPOINT
    _, pos = _legacy_pickle(path, data, 0, fmt)  # the magic number, checked by the caller
    protocol, pos = _legacy_pickle(path, data, pos, fmt)
    if protocol != LEGACY_PROTOCOL:
        raise TorchFileError(
            f"{path}: legacy torch file of protocol version {protocol!r}; expected "
            f"{LEGACY_PROTOCOL}"
        )
    info, pos = _legacy_pickle(path, data, pos, fmt)
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise TorchFileError(
            f"{path}: system info {info!r:.80}; only little-endian checkpoints are read"
        )
    storages = safe_pickle.TorchStorages()
    payload, pos = _legacy_pickle(path, data, pos, fmt, storages)
    order, pos = _legacy_pickle(path, data, pos, fmt)
    if type(order) is not list or not all(type(k) is str for k in order):
        raise TorchFileError(f"{path}: the storage key list is not a list of strings")
    # Where each storage's bytes are: after its int64 element count, in the listed order.
    offsets = {}
    for key in order:
        storage = storages.by_key.get(key)
        if storage is None or key in offsets:
            raise TorchFileError(
                f"{path}: storage key {key[:40]!r} listed "
                f"{'twice' if storage is not None else 'but never used'}"
            )
        if pos + 8 > len(data):
            raise TorchFileError(
                f"{path}: truncated: storage '{key}' should start at byte {pos} of {len(data)}"
            )
        count = int(np.frombuffer(data, _INT64, 1, pos)[0])
        if count != storage.numel:
            raise TorchFileError(
                f"{path}: storage '{key}' at byte {pos} has {count} elements; its "
                f"persistent id declares {storage.numel}"
            )
        offsets[key] = pos + 8
        pos += 8 + count * storage.dtype.itemsize
    if pos > len(data):
        raise TorchFileError(
            f"{path}: truncated: {len(data)} bytes, the storages end at byte {pos}"
        )
    unlisted = set(storages.by_key) - set(offsets)
    if unlisted:
        raise TorchFileError(f"{path}: storage '{sorted(unlisted)[0]}' has no data")
    wanted = _selected(path, _tensors(path, payload), keys)
    for tensor in wanted.values():
        storage = tensor.storage.root
        if storage.data is None:
            storage.data = np.frombuffer(
                data, storage.dtype, storage.numel, offsets[storage.key]
            ).copy()
    return {k: t.to_numpy(f"{path}: {k!r}") for k, t in wanted.items()}


def load_state_dict(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The tensors of a `torch.save`d state dict (zip archive or legacy file), without torch.

    Args:
      path: the .pth file.
      keys: the tensors to read (None: all); the others' bytes are not copied.

    Returns:
      {name: array} in the file's order (or the order of `keys`), each array a copy with the
      tensor's shape and dtype (float32 for `torch.FloatStorage`).

    Raises:
      UserError: naming the file: not found, neither layout (garbage, truncated), a refused
        pickle (a global outside the allow-list, such as `os.system`; a bomb), not a flat
        dict of tensors, a missing key, a storage whose bytes are missing or of the wrong size,
        a tensor outside its storage, or a big-endian file.
    """
    path = Path(path)
    if not path.is_file():
        raise TorchFileError(f"{path}: file not found")
    try:
        with open(path, "rb") as file:
            start = file.read(len(_LEGACY_START))
            if start == _LEGACY_START:
                with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    return _read_legacy_state_dict(path, data, keys)
    except OSError as error:
        raise TorchFileError(f"{path}: cannot read ({error})") from None
    if not start.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(path):
        raise TorchFileError(
            f"{path}: not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy "
            "torch file)"
        )
    try:
        return _read_zip_state_dict(path, keys)
    except UserError:
        raise
    except Exception as error:  # zipfile's many ways to fail on a damaged archive
        raise _unreadable(path, error) from None
