# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Pickle bombs shared by the tests of every reader of torch.save zips (tracker frames,
LPIPS weights): each a small pickle that would take unbounded time or memory to load."""

import zipfile
from pathlib import Path


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def billion_laughs(key: bytes) -> bytes:
    """{key: l_30} with l_k = [l_k-1, l_k-1]: 2**30 leaves in a few hundred bytes."""
    laughs = b"]r" + _u32(0)
    for k in range(1, 31):
        laughs += b"0](j" + _u32(k - 1) + b"j" + _u32(k - 1) + b"er" + _u32(k)
    return b"\x80\x02}(X" + len(key).to_bytes(4, "little") + key + laughs + b"u."


def bombs(key: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (pickle bytes, what the refusal says): a memo index beyond the memo, 100,000
    nested MARKs, and the billion laughs under `key`."""
    return {
        "memo": (b"\x80\x02j" + _u32(2**31) + b".", "memo index"),
        "marks": (b"\x80\x02" + b"(" * 100_000 + b".", "more than 64 nested MARKs"),
        "laughs": (billion_laughs(key), "more than 100000"),
    }


def write_zip(path: Path, data: bytes) -> Path:
    """A torch.save-style zip holding `data` as its pickle."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
    return path
