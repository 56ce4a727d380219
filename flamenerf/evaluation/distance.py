# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Quality against the distance to the code frame's camera.

A validation frame is rendered with the warp and appearance codes of a training frame (its
`warp_id`); the farther its camera is from that frame's, the more the render extrapolates.
`distance_report` relates the frames' PSNR to that distance (metrics.json's "distance").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def code_frame_distances(capture: Any, ids: Sequence[str]) -> dict[str, float]:
    """Metres between each frame's camera and the camera of the training frame whose warp
    code it uses (metadata.json `warp_id` -> the training frame with that `warp_id`).

    Args:
      capture: a `flamenerf.datasets.capture.Capture` (cameras in the model frame; distances
        are converted to metres of FLAME space with its `units_per_metre`).
      ids: the frames (any of the capture's ids; a training frame's distance is 0).

    Returns:
      {id: distance}, in the order of `ids`.

    Raises:
      ValueError: an id the capture does not have, or a warp_id no training frame has.
    """
    by_code = {capture.frames[i].warp_id: i for i in capture.train_ids}
    metadata = capture.root / "metadata.json"
    distances = {}
    for frame_id in ids:
        if frame_id not in capture.frames:
            raise ValueError(f"{capture.root / 'dataset.json'}: no frame '{frame_id}'")
        code = capture.frames[frame_id].warp_id
        if code not in by_code:
            raise ValueError(
                f"{metadata}: '{frame_id}'.warp_id = {code} is no training frame's warp_id "
                f"(they are {sorted(by_code)[:5]}...)"
            )
        own = capture.cameras[frame_id].position
        partner = capture.cameras[by_code[code]].position
        distances[frame_id] = float(np.linalg.norm(own - partner)) / capture.scene.units_per_metre
    return distances


def distance_report(
    psnr_by_id: Mapping[str, float], distance_by_id: Mapping[str, float]
) -> dict[str, Any]:
    """PSNR against the distance to the code frame's camera, over the frames of `psnr_by_id`.

    Frames without a finite PSNR are left out. The nearest and the farthest thirds hold
    max(1, round(n / 3)) frames each (sorted by distance, ties by id order).

    Args:
      psnr_by_id: {id: PSNR (dB)}; distance_by_id: {id: metres}, holding every id of it.

    Returns:
      {"count": n, "pearson": Pearson correlation of distance and PSNR (NaN for fewer than 2
       frames or a constant), "third": frames per third, "near_third_psnr" /
       "far_third_psnr": mean PSNR of the nearest / farthest third, "near_minus_far": their
       difference (dB), "near_third_distance_m" / "far_third_distance_m": the thirds' mean
       distances, "pairs": [{"id", "distance_m", "psnr"}] sorted by distance}; the means are
       NaN when no frame has a finite PSNR.
    """
    missing = [i for i in psnr_by_id if i not in distance_by_id]
    if missing:
        raise ValueError(f"distance_report: no distance for frames {missing[:5]}")
    ids = [i for i in psnr_by_id if math.isfinite(float(psnr_by_id[i]))]
    ids.sort(key=lambda i: float(distance_by_id[i]))
    distance = np.array([float(distance_by_id[i]) for i in ids])
    psnr = np.array([float(psnr_by_id[i]) for i in ids])
    n = len(ids)
    third = max(1, round(n / 3))
    mean = lambda v: float(v.mean()) if v.size else math.nan
    pearson = math.nan
    if n >= 2 and distance.std() > 0 and psnr.std() > 0:
        d, p = distance - distance.mean(), psnr - psnr.mean()
        pearson = float((d * p).sum() / math.sqrt((d * d).sum() * (p * p).sum()))
    near, far = slice(0, third), slice(max(n - third, 0), n)
    return {
        "count": n,
        "pearson": pearson,
        "third": min(third, n),
        "near_third_psnr": mean(psnr[near]),
        "far_third_psnr": mean(psnr[far]),
        "near_minus_far": mean(psnr[near]) - mean(psnr[far]),
        "near_third_distance_m": mean(distance[near]),
        "far_third_distance_m": mean(distance[far]),
        "pairs": [
            {"id": i, "distance_m": float(d), "psnr": float(p)}
            for i, d, p in zip(ids, distance, psnr, strict=True)
        ],
    }
