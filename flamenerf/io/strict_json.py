# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Strict JSON for the capture format: UTF-8, no key twice in one object, clear errors.

`json.loads` silently keeps the last of two equal keys and raises a mix of exception types on
broken input; every reader of capture files (cameras, scene.json, flame/*.json, ...) goes
through `parse`, so each broken file gives one ValueError naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.errors import UserError

ROTATION_TOLERANCE = 1e-4  # max |R R^T - I| and |det R - 1| accepted for a rotation matrix


class DuplicateKey(UserError):
    """A key given twice in one JSON object (the message is the key)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json object_pairs_hook refusing a key given twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def parse(data: bytes, path: str | Path, what: str) -> Any:
    """Parses a JSON file's bytes.

    Args:
      data: the file's content; path: the file, for messages; what: what it should hold.

    Raises:
      ValueError: naming `path`: not UTF-8, not JSON, nested too deeply, an integer of too
        many digits, or a key given twice in one object.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: found bytes that are not UTF-8 text ({error}); expected {what}"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except DuplicateKey as error:
        raise ValueError(
            f"{path}: found key '{error}' twice in one object; expected each key once ({what})"
        ) from None
    except RecursionError:
        raise ValueError(f"{path}: found JSON nested too deeply; expected {what}") from None
    except ValueError as error:  # JSONDecodeError, or an integer of too many digits
        raise ValueError(f"{path}: found invalid JSON ({error}); expected {what}") from None


def check_rotation(matrix: np.ndarray, where: str) -> None:
    """Raises ValueError naming `where` unless `matrix` (3, 3) is a rotation (det +1)."""
    error = np.abs(matrix @ matrix.T - np.eye(3)).max()
    det = np.linalg.det(matrix)
    if not (error <= ROTATION_TOLERANCE and abs(det - 1.0) <= ROTATION_TOLERANCE):
        raise ValueError(
            f"{where}: found a matrix with max |R R^T - I| = {error:.3g} and det = {det:.6g}, "
            f"expected a rotation (orthonormal rows, det +1, within {ROTATION_TOLERANCE:g})"
        )
