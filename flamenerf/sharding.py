# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The device mesh shared by training, evaluation and rendering.

Everything runs as one program over a 1-D mesh of every device of every process: batches are
split along the mesh's "data" axis, parameters are replicated. This is `pmap`'s data
parallelism expressed with `jax.jit` and shardings, on one device, many, or a pod slice.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flamenerf.datasets.rays import RayBatch

Array = jax.Array
DATA_AXIS = "data"


def make_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process)."""
    devices = devices if devices is not None else jax.devices()
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: RayBatch, mesh: Mesh) -> RayBatch:
    """Places this process's rows of a batch on the mesh, split along the data axis.

    On one host `batch` is the global batch; on several, each process passes its own share
    and the global batch is their concatenation (`make_array_from_process_local_data`).
    Returns the same RayBatch type, its fields now global jax arrays (the model's input).
    """
    sharding = batch_sharding(mesh)
    return RayBatch(
        *(jax.make_array_from_process_local_data(sharding, np.asarray(value)) for value in batch)
    )
