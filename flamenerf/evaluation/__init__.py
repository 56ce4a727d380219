# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Evaluation: rendering trained experiments, scoring them and drawing the results.

    renderer         `Renderer`: full images in device-sharded chunks
    metrics          PSNR, SSIM, MS-SSIM, the disentanglement change, and `METRICS`, the
                     registry every report and table reads (add a metric there)
    lpips            LPIPS (AlexNet, VGG-16) in JAX from the user's weight files; registered
                     while they are there
    evaluate         one frame (`evaluate_frame`, shared with training-time validation), one
                     experiment (`evaluate`: metrics.json, PNGs), the table over experiments
    distance         quality against the distance to the code frame's camera and to the
                     nearest training camera; the code swap (whose codes render a far view)
    disentanglement  a frame rendered again with another frame's expression
    figures          error and depth maps, silhouette overlays, the disentanglement figure,
                     training curves
    report_html      the HTML page of an evaluation (EXP/eval/step_N/index.html)

Nothing here imports `flamenerf.training`: the experiment is passed in. `python -m
flamenerf.eval` and `python -m flamenerf.plots` are the command lines over this package.
"""
