# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Quality against the distance to the code frame's camera.

A validation frame is rendered with the warp and appearance codes of a training frame (its
`warp_id`); the farther its camera is from that frame's, the more the render extrapolates.
`distance_report` relates the frames' PSNR to that distance (metrics.json's "distance").

A frame far from its code frame's camera is often far from every training camera too, and a
NeRF without any per-frame code also loses quality there (it interpolates between fewer
views). Two figures tell the two apart: the distance to the nearest training camera
(`nearest_training_frames`; `distance_report`'s "nearest_train" figures: their correlation with
PSNR, their mean over the thirds by code-frame distance), and the code swap
(`code_swap_report`): the farthest third rendered again with the codes of the training frame
whose camera is nearest to each. If the codes tie what a view shows to their own frame's
camera (the failure `eval` is built to catch), the nearest camera's codes render it better;
if the scene does not depend on the codes, both renders score the same.
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


def nearest_training_frames(capture: Any, ids: Sequence[str]) -> dict[str, tuple[str, float]]:
    """The training frame whose camera is nearest to each frame's camera (by position).

    Args:
      capture: a `flamenerf.datasets.capture.Capture` (distances in metres of FLAME space, as
        in `code_frame_distances`); ids: the frames (a training frame's own is itself, 0).

    Returns:
      {id: (training frame id, metres)}, in the order of `ids`; ties go to the earlier
      training frame of `capture.train_ids`.

    Raises:
      ValueError: an id the capture does not have, or a capture without training frames.
    """
    if not capture.train_ids:
        raise ValueError(f"{capture.root / 'dataset.json'}: no training frames (train_ids)")
    train = list(capture.train_ids)
    positions = np.stack([capture.cameras[i].position for i in train])  # (T, 3)
    nearest = {}
    for frame_id in ids:
        if frame_id not in capture.frames:
            raise ValueError(f"{capture.root / 'dataset.json'}: no frame '{frame_id}'")
        gaps = np.linalg.norm(positions - capture.cameras[frame_id].position, axis=-1)
        k = int(np.argmin(gaps))  # the first of equal minima
        nearest[frame_id] = (train[k], float(gaps[k]) / capture.scene.units_per_metre)
    return nearest


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two (n,) arrays; NaN for n < 2 or a constant."""
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return math.nan
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / math.sqrt((dx * dx).sum() * (dy * dy).sum()))


def distance_report(
    psnr_by_id: Mapping[str, float],
    distance_by_id: Mapping[str, float],
    nearest_by_id: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """PSNR against the distance to the code frame's camera, over the frames of `psnr_by_id`.

    Frames without a finite PSNR are left out. The nearest and the farthest thirds hold
    max(1, round(n / 3)) frames each (sorted by distance, ties by id order).

    Args:
      psnr_by_id: {id: PSNR (dB)}; distance_by_id: {id: metres}, holding every id of it.
      nearest_by_id: optional {id: metres} from each frame's camera to the nearest training
        camera (`nearest_training_frames`), holding every id of psnr_by_id.

    Returns:
      {"count": n, "pearson": Pearson correlation of distance and PSNR (NaN for fewer than 2
       frames or a constant), "third": frames per third, "near_third_psnr" /
       "far_third_psnr": mean PSNR of the nearest / farthest third, "near_minus_far": their
       difference (dB), "near_third_distance_m" / "far_third_distance_m": the thirds' mean
       distances, "pairs": [{"id", "distance_m", "psnr"}] sorted by distance}; the means are
       NaN when no frame has a finite PSNR. With nearest_by_id also "pearson_nearest_train"
       (PSNR against the distance to the nearest training camera),
       "near_third_nearest_train_m" / "far_third_nearest_train_m" (that distance's mean over
       the thirds above) and each pair's "nearest_train_m".
    """
    for name, table in (("distance", distance_by_id), ("nearest", nearest_by_id)):
        missing = [i for i in psnr_by_id if table is not None and i not in table]
        if missing:
            raise ValueError(f"distance_report: no {name} for frames {missing[:5]}")
    ids = [i for i in psnr_by_id if math.isfinite(float(psnr_by_id[i]))]
    ids.sort(key=lambda i: float(distance_by_id[i]))
    distance = np.array([float(distance_by_id[i]) for i in ids])
    psnr = np.array([float(psnr_by_id[i]) for i in ids])
    n = len(ids)
    third = max(1, round(n / 3))
    mean = lambda v: float(v.mean()) if v.size else math.nan
    near, far = slice(0, third), slice(max(n - third, 0), n)
    report = {
        "count": n,
        "pearson": _pearson(distance, psnr),
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
    if nearest_by_id is not None:
        nearest = np.array([float(nearest_by_id[i]) for i in ids])
        report["pearson_nearest_train"] = _pearson(nearest, psnr)
        report["near_third_nearest_train_m"] = mean(nearest[near])
        report["far_third_nearest_train_m"] = mean(nearest[far])
        for pair, metres in zip(report["pairs"], nearest, strict=True):
            pair["nearest_train_m"] = float(metres)
    return report


def far_third_ids(report: Mapping[str, Any]) -> list[str]:
    """The ids of a `distance_report`'s farthest third (farthest last)."""
    pairs = report["pairs"]
    return [p["id"] for p in pairs[max(len(pairs) - report["third"], 0) :]] if pairs else []


def code_swap_report(
    own_psnr: Mapping[str, float],
    codes_from: Mapping[str, str | None],
    swapped_psnr: Mapping[str, float],
) -> dict[str, Any]:
    """The code swap over some frames (`evaluate` passes the farthest third).

    Args:
      own_psnr: {id: PSNR with the frame's own codes} of the frames considered.
      codes_from: {id: the training frame whose codes rendered it again, or None where a
        swap would change nothing (that frame's codes are its own, or the model reads no
        per-frame codes)}, holding the ids of own_psnr.
      swapped_psnr: {id: PSNR rendered with codes_from[id]'s codes}, holding every id whose
        codes_from is not None.

    Returns:
      {"frames": {id: {"codes_from", "own_psnr", "swapped_psnr" (None where not rendered)}},
       "rendered": how many frames were rendered again (and both their PSNRs are finite),
       "own_psnr" / "swapped_psnr": the mean PSNR of those frames with their own and with the
       other codes, "code_dependence_db": swapped minus own (dB; NaN when no frame was
       rendered again: nothing was measured)}. Near 0: what the frames show does not depend
       on whose codes render them; clearly positive: the nearest camera's codes render them
       better, so the codes carry what each training camera saw.

    Raises:
      ValueError: codes_from or swapped_psnr does not hold the ids it must.
    """
    ids = list(own_psnr)
    if set(codes_from) != set(ids):
        raise ValueError("code_swap_report: codes_from and own_psnr differ in ids")
    missing = [i for i in ids if codes_from[i] is not None and i not in swapped_psnr]
    if missing:
        raise ValueError(f"code_swap_report: no swapped PSNR for frames {missing[:5]}")
    frames = {
        i: {
            "codes_from": codes_from[i],
            "own_psnr": float(own_psnr[i]),
            "swapped_psnr": None if codes_from[i] is None else float(swapped_psnr[i]),
        }
        for i in ids
    }
    scored = [
        f
        for f in frames.values()
        if f["swapped_psnr"] is not None
        and math.isfinite(f["own_psnr"])
        and math.isfinite(f["swapped_psnr"])
    ]
    own = float(np.mean([f["own_psnr"] for f in scored])) if scored else math.nan
    swapped = float(np.mean([f["swapped_psnr"] for f in scored])) if scored else math.nan
    return {
        "frames": frames,
        "rendered": len(scored),
        "own_psnr": own,
        "swapped_psnr": swapped,
        "code_dependence_db": swapped - own,
    }
