# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The subject's geometry: the FLAME model, cameras, silhouettes and rigid motions.

    flame        FLAME: loading the official model file (or the procedural head), the
                 linear-blend-skinning forward pass, parameters and landmarks
    camera       the Nerfies camera: JSON, scaling, projection, pixels to rays, distortion
    rasterize    silhouettes of a posed mesh seen from a camera
    rigid_body   SE(3) exponential maps and rotations for warps and head poses

The stable public names of the FLAME model are also reachable as `flamenerf.flame`.
"""
