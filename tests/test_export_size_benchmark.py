# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""benchmarks/export_size.py: the breakdown of an exported avatar.glb accounts for every byte,
under the parts that hold them."""

import json
import struct

from benchmark_util import load
from export_util import tiny_export


def test_breakdown_accounts_for_every_byte(tmp_path_factory):
    glb = (tiny_export(tmp_path_factory, head=True) / "avatar.glb").read_bytes()
    parts = load("export_size").breakdown(glb)
    assert sum(parts.values()) == len(glb)
    for name in (
        "room POSITION",
        "room COLOR_0",
        "room indices",
        "head POSITION",
        "head JOINTS_0",
        "head WEIGHTS_0",
        "head morph targets",
        "skin",
        "animations",
        "json",
    ):
        assert parts[name] > 0, name
    views = json.loads(glb[20 : 20 + struct.unpack_from("<I", glb, 12)[0]])["bufferViews"]
    # 12 + 8 + 8 bytes of headers, at most 3 bytes of padding after each buffer view.
    assert "other" not in parts and 28 <= parts["container"] <= 28 + 3 * len(views)
