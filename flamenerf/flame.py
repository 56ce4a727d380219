# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The FLAME model's stable public names (implemented in `flamenerf.geometry.flame`).

model = flamenerf.flame.load_model("generic_model.pkl")   # or the procedural head's .npz
out = flamenerf.flame.forward(model, flamenerf.flame.FlameParams(expression=...))
out.vertices, out.joints, out.landmarks
"""

from flamenerf.geometry.flame import (
    JOINT_NAMES,
    FlameModel,
    FlameOutput,
    FlameParams,
    forward,
    load_model,
    stack_params,
    with_landmark_embedding,
)

__all__ = [
    "JOINT_NAMES",
    "FlameModel",
    "FlameOutput",
    "FlameParams",
    "forward",
    "load_model",
    "stack_params",
    "with_landmark_embedding",
]
