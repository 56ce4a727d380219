# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Reading values from tracker files with errors that name the file and the field.

Every reader goes through these: a value of the wrong type, shape or with NaN/inf, a missing
field or an unreadable file is a `StepError` naming the file (or `file: frames[k]`), the field,
what was expected and what was found.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.capture.io import StepError
from flamenerf.geometry.camera import Camera


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_text(shape: Sequence[int | None]) -> str:
    names = ["N" if n is None else str(n) for n in shape]
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


def values(raw: Any, source: Path | str, field: str, shape: Sequence[int | None]) -> np.ndarray:
    """`raw` as a finite float64 array of `shape` (None: any length).

    Raises:
      StepError: naming `source` and `field`, for non-numbers, another shape or NaN/inf.
    """
    expected = _shape_text(shape)
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise StepError(
            f"{source}: field '{field}': expected numbers of shape {expected}, found {_short(raw)}"
        ) from None
    if array.ndim != len(shape) or any(
        n is not None and n != found for n, found in zip(shape, array.shape, strict=True)
    ):
        raise StepError(
            f"{source}: field '{field}': expected shape {expected}, found {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise StepError(f"{source}: field '{field}': expected finite numbers, found NaN or inf")
    return array


def vector(raw: Any, source: Path | str, field: str, size: int | None = None) -> np.ndarray:
    """A flat vector of `size` (None: any) numbers; a leading batch axis of 1 is dropped."""
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return values(raw, source, field, (size,))  # reports the value
    return values(
        array[0] if array.ndim == 2 and len(array) == 1 else array, source, field, (size,)
    )


def field(raw: Any, key: str, source: Path | str) -> Any:
    """raw[key] of a mapping; a missing key or a non-mapping is an error naming `source`."""
    if not isinstance(raw, Mapping):
        raise StepError(f"{source}: expected an object with field '{key}', found {_short(raw)}")
    if key not in raw:
        raise StepError(f"{source}: missing field '{key}'")
    return raw[key]


def checked_image_size(width: Any, height: Any, source: Path | str) -> tuple[int, int]:
    """(width, height) as positive integers."""
    size = values([width, height], source, "w, h", (2,))
    if not all(float(v).is_integer() and v > 0 for v in size):
        raise StepError(f"{source}: fields 'w', 'h': expected positive integers, found {size}")
    return int(size[0]), int(size[1])


def checked_camera(source: Path | str, **fields: Any) -> Camera:
    """A Camera, with its ValueError turned into a StepError naming `source`."""
    try:
        return Camera(**fields)
    except ValueError as error:
        raise StepError(f"{source}: {error}") from None


def stem(path: str) -> str:
    """The file name without its folder and suffix: how tracker frames are named."""
    return Path(str(path)).stem


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles)."""
    if not path.is_file():
        raise StepError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise StepError(f"{path}: not a readable .npz file without pickles ({error})") from None


def read_npy(path: Path) -> np.ndarray:
    """The array of an .npy file (no pickles)."""
    if not path.is_file():
        raise StepError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise StepError(f"{path}: not a readable .npy file without pickles ({error})") from None


def read_text_vector(path: Path, field: str) -> np.ndarray:
    """Whitespace-separated numbers of a text file (INSTA's and VHAP's `exp_path`)."""
    if not path.is_file():
        raise StepError(f"{path}: file not found (named by '{field}')")
    try:
        numbers = [float(token) for token in path.read_text(encoding="utf-8").split()]
    except (ValueError, UnicodeDecodeError):
        raise StepError(f"{path}: expected whitespace-separated numbers (from '{field}')") from None
    if not numbers:
        raise StepError(f"{path}: empty; expected the expression coefficients ('{field}')")
    return values(numbers, path, field, (None,))
