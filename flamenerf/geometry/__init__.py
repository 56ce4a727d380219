# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The subject's geometry: the FLAME model, cameras, silhouettes, rigid motions and the
subject in the scene.

    flame        FLAME: loading the official model file (or the procedural head), the
                 linear-blend-skinning forward pass, parameters and landmarks
    camera       the Nerfies camera: JSON, scaling, projection, pixels to rays, distortion
    rasterize    silhouettes of a posed mesh seen from a camera
    rigid_body   SE(3) exponential maps and rotations for warps and head poses
    scene        scene.json's normalisation and the FLAME placement (Scene, ToWorld), the
                 model frame (model_frame, MODEL_UNITS_PER_METRE)
    subject      the subject in the scene (Subject): the FLAME mesh posed in scene units,
                 neutrals, rest joints, conditioning vectors and normalised cameras

The stable public names of the FLAME model are also reachable as `flamenerf.flame`.
"""
