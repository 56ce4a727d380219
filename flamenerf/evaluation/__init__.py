# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluation: rendering trained experiments, scoring them and drawing the results.

    renderer         `Renderer`: full images in device-sharded chunks
    metrics          PSNR, SSIM, MS-SSIM, the disentanglement change, and `METRICS`, the
                     registry every report and table reads (add a metric there)
    evaluate         one frame (`evaluate_frame`, shared with training-time validation), one
                     experiment (`evaluate`: metrics.json, PNGs), the table over experiments
    distance         quality against the distance to the code frame's camera
    disentanglement  a frame rendered again with another frame's expression
    figures          error and depth maps, the disentanglement figure, training curves

Nothing here imports `flamenerf.training`: the experiment is passed in. `python -m
flamenerf.eval` and `python -m flamenerf.plots` are the command lines over this package.
"""
