# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Rendering a trained subject with other cameras and other FLAME parameters.

    reanimation   the pure arithmetic on FLAME parameters: expression and jaw, relative
                  transfer, head pose (driven, relative, turned), conditioning vectors,
                  posed meshes and their silhouettes, cameras read from files
    view          `View` (a camera and the parameters rendered, with condition and
                  silhouette), the checks shared by the builders, the rays of a view
    paths         novel views: the capture's camera paths, orbits, head yaw/pitch sweeps
    expressions   one camera, other expressions: interpolations, coefficient sweeps and
                  reanimation by a driving sequence of FLAME parameter files
    output        rendering a list of views, and writing frames/, the video and render.json

`python -m flamenerf.render` (`flamenerf/render.py`) is the command line over these.
"""
