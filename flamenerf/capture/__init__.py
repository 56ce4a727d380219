# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""From a phone video, or a face tracker's output, to a checked capture.

`python -m flamenerf.capture all VIDEO --out CAPTURE ...` runs the steps below in order
(`pipeline`: resumable, one progress display, then prints the train command);
`python -m flamenerf.capture SUBCOMMAND` runs one step at a time, each resumable and each
writing only into the capture folder it is given:

    frames        video -> rgb/ frames, dataset.json, metadata.json (train/validation split)
    cameras       structure from motion (pycolmap) or an existing COLMAP model -> camera/
    import-flame  per-frame FLAME parameters from a tracker (VHAP, metrical-tracker, INSTA,
                  IMavatar, DECA) -> flame/, scene.json's flame section
    fit           FLAME fitting to detected 2D landmarks, given the cameras -> flame/
    check         the capture validator plus pictures of the fit
    all           all of them: frames, cameras, fit (or import-flame with --from), check

The on-disk layout is `docs/capture-format.md` (`flamenerf.datasets.capture` reads it);
`flamenerf.capture.io` writes it.
"""
