# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""2D face landmarks: the MediaPipe detector, the landmark files and the model's embedding.

Detector. MediaPipe's FaceLandmarker (the FaceMesh model: 478 points, 468 of the face and 10
of the irises) run by the `mediapipe` tasks API (the optional extra `pip install -e
'.[capture]'`, imported only when a detector is built). flamenerf does not ship the model
bundle and never downloads it: the user puts Google's `face_landmarker.task` (float16,
version 1, Apache-2.0; `MODEL_URL`, listed on `MODEL_PAGE`) at
`cache_root()/mediapipe/face_landmarker.task` or names it with $FLAMENERF_LANDMARK_MODEL;
either is checked against its SHA-256 (`MODEL_SHA256`). `--detector_model PATH` takes any
bundle, unchecked (another MediaPipe release, say). See `read_model`.

Landmark files (`CAPTURE/landmarks/ID.json`, written by `fit`, read by `fit` and `check`):

    {"layout": "mediapipe478" | "model",  mediapipe478: the detector's 478 points, in its order;
                                          model: one point per landmark of the model's
                                          embedding, in its order (e.g. iBUG 17-67)
     "image_size": [width, height],       of rgb/1x/ID.png
     "points": [[u, v], ...] | null,      continuous pixel coordinates at 1x (pixel (i, j) has
                                          its centre at (i + 0.5, j + 0.5)); null: no face found
     "source": "..."}                     who wrote them (free text)

Model landmarks. A FLAME model's landmark embedding (`lmk_faces_idx`, `lmk_bary_coords`) puts
L points on its mesh. Two layouts are understood:
- the 51 inner iBUG-68 points 17-67 (the official `flame_static_embedding.pkl` and the
  procedural head's): detector points map through `MEDIAPIPE_TO_IBUG51`;
- metrical-tracker's `mediapipe_landmark_embedding.npz`, whose `landmark_indices` name the
  MediaPipe point of each embedded landmark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from flamenerf.capture.io import StepError
from flamenerf.geometry import flame
from flamenerf.io import paths

NUM_MEDIAPIPE = 478  # FaceLandmarker points: 468 face mesh + 2 x 5 iris
LAYOUTS = ("mediapipe478", "model")
DETECTOR_SOURCE = "mediapipe FaceLandmarker (face_landmarker.task)"
INSTALL_HINT = "install the detector with: pip install -e '.[capture]' (mediapipe)"
# The detector's model: MediaPipe's FaceLandmarker bundle, float16 version 1 (3,758,596 bytes,
# Apache-2.0), which the user downloads once (README, "Real captures"); see `read_model`.
MODEL_NAME = "face_landmarker.task"
MODEL_PAGE = "https://ai.google.dev/edge/mediapipe/solutions/vision/face_landmarker#models"
MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
    "face_landmarker.task"
)
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_ENV = "FLAMENERF_LANDMARK_MODEL"  # a path to the bundle, overriding the default place

# MediaPipe face-mesh index of iBUG-68 points 17-67, in iBUG order (the subject's right brow,
# eye and mouth corner first). This is the widely used MediaPipe -> dlib/iBUG-68
# correspondence, as published for example in github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks
# (which averages two neighbours for the nose bridge; one vertex each is used here). The jaw
# contour 0-16 is left out: FLAME's static embedding has no contour (it is yaw-dependent).
MEDIAPIPE_TO_IBUG51 = np.array(
    [
        *(70, 63, 105, 66, 107),  # 17-21 right brow, outer to inner
        *(336, 296, 334, 293, 300),  # 22-26 left brow, inner to outer
        *(168, 197, 5, 4),  # 27-30 nose bridge, top to tip
        *(75, 97, 2, 326, 305),  # 31-35 nose base, right to left
        *(33, 160, 158, 133, 153, 144),  # 36-41 right eye: outer corner, upper lid, inner, lower
        *(362, 385, 387, 263, 373, 380),  # 42-47 left eye: inner corner, upper lid, outer, lower
        *(61, 39, 37, 0, 267, 269, 291),  # 48-54 outer upper lip, right corner to left corner
        *(321, 314, 17, 84, 91),  # 55-59 outer lower lip, left to right
        *(78, 82, 13, 312, 308),  # 60-64 inner upper lip, right corner to left corner
        *(317, 14, 87),  # 65-67 inner lower lip, left to right
    ],
    dtype=np.int64,
)


# --------------------------------------------------------------------------------------------
# The model's landmark layout.


@dataclasses.dataclass(frozen=True)
class LandmarkLayout:
    """How detector points map to the L landmarks of a model's embedding.

    Attributes:
      name: "ibug51" or "mediapipe" (metrical-tracker's embedding).
      mediapipe_indices: (L,) the MediaPipe point of each model landmark.
    """

    name: str
    mediapipe_indices: np.ndarray

    @property
    def num_landmarks(self) -> int:
        return len(self.mediapipe_indices)


def _embedding_indices(path: Path) -> np.ndarray | None:
    """`landmark_indices` (L,) of a metrical-tracker `.npz` embedding, or None."""
    if path.suffix != ".npz":
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "landmark_indices" not in npz.files:
                return None
            indices = np.asarray(npz["landmark_indices"]).reshape(-1)
    except (OSError, ValueError) as error:
        raise StepError(f"{path}: not a readable .npz landmark embedding ({error})") from None
    if indices.dtype.kind not in "iu" or indices.min(initial=0) < 0:
        raise StepError(f"{path}: key 'landmark_indices' must hold MediaPipe point indices >= 0")
    if indices.max(initial=0) >= NUM_MEDIAPIPE:
        raise StepError(
            f"{path}: key 'landmark_indices' names point {indices.max()}; MediaPipe has "
            f"{NUM_MEDIAPIPE} points"
        )
    return indices.astype(np.int64)


def load_model(
    model_path: Path, embedding: Path | None = None
) -> tuple[flame.FlameModel, LandmarkLayout]:
    """The FLAME model (with `embedding` if given) and how detector points map to its landmarks.

    Raises:
      StepError: a missing or malformed file, a model without a landmark embedding, or an
        embedding that is neither 51 iBUG points nor has `landmark_indices`.
    """
    try:
        model = flame.load_model(model_path, embedding)
    except (FileNotFoundError, ValueError) as error:
        raise StepError(str(error)) from None
    return model, model_layout(model, model_path if embedding is None else embedding)


def model_layout(model: flame.FlameModel, embedding_source: Path) -> LandmarkLayout:
    """The layout of the model's landmark embedding, read from `embedding_source`.

    Raises:
      StepError: naming `embedding_source`, when the model has no embedding or one whose size
        matches neither layout.
    """
    if not model.has_landmarks:
        raise StepError(
            f"{embedding_source}: the FLAME model has no landmark embedding (lmk_faces_idx, "
            "lmk_bary_coords); pass --landmark_embedding flame_static_embedding.pkl or "
            "mediapipe_landmark_embedding.npz"
        )
    count = int(model.lmk_faces_idx.shape[0])
    indices = _embedding_indices(Path(embedding_source))
    if indices is not None:
        if len(indices) != count:
            raise StepError(
                f"{embedding_source}: key 'landmark_indices' has {len(indices)} entries; the "
                f"embedding has {count} landmarks"
            )
        return LandmarkLayout("mediapipe", indices)
    if count != len(MEDIAPIPE_TO_IBUG51):
        raise StepError(
            f"{embedding_source}: the landmark embedding has {count} points; expected the 51 "
            "iBUG points 17-67, or an .npz with 'landmark_indices' (MediaPipe ids)"
        )
    return LandmarkLayout("ibug51", MEDIAPIPE_TO_IBUG51)


# --------------------------------------------------------------------------------------------
# Landmark files.


@dataclasses.dataclass(frozen=True)
class Detection:
    """One frame's landmarks as stored in `landmarks/ID.json`.

    Attributes:
      layout: "mediapipe478" or "model".
      image_size: (width, height) of the 1x image.
      points: (N, 2) continuous pixel coordinates, or None when no face was found.
      source: who wrote them.
    """

    layout: str
    image_size: tuple[int, int]
    points: np.ndarray | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The `landmarks/ID.json` dictionary."""
        return {
            "layout": self.layout,
            "image_size": list(self.image_size),
            "points": None if self.points is None else self.points.tolist(),
            "source": self.source,
        }


def detection_from_dict(raw: Any, source: str) -> Detection:
    """Parses a `landmarks/ID.json` dictionary; StepError names `source` and the field."""
    if not isinstance(raw, Mapping):
        raise StepError(f"{source}: expected a JSON object with 'layout', 'image_size', 'points'")
    layout = raw.get("layout")
    if layout not in LAYOUTS:
        raise StepError(f"{source}: field 'layout' is {layout!r}; expected one of {LAYOUTS}")
    size = raw.get("image_size")
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise StepError(f"{source}: field 'image_size' must be [width, height] (positive ints)")
    points = raw.get("points")
    if points is not None:
        try:
            points = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError):
            raise StepError(f"{source}: field 'points' must be a list of [u, v] pairs") from None
        if points.ndim != 2 or points.shape[1] != 2 or not np.all(np.isfinite(points)):
            raise StepError(
                f"{source}: field 'points' must be a list of finite [u, v] pairs, found shape "
                f"{points.shape}"
            )
        if layout == "mediapipe478" and len(points) != NUM_MEDIAPIPE:
            raise StepError(
                f"{source}: field 'points' has {len(points)} points; layout 'mediapipe478' "
                f"has {NUM_MEDIAPIPE}"
            )
    return Detection(layout, (size[0], size[1]), points, str(raw.get("source", "")))


def model_points(detection: Detection, layout: LandmarkLayout, source: str) -> np.ndarray | None:
    """(L, 2) pixel coordinates of the model's landmarks, or None when no face was found.

    Raises:
      StepError: a "model" layout file whose point count is not the embedding's L.
    """
    if detection.points is None:
        return None
    if detection.layout == "mediapipe478":
        return detection.points[layout.mediapipe_indices]
    if len(detection.points) != layout.num_landmarks:
        raise StepError(
            f"{source}: field 'points' has {len(detection.points)} points; the model's landmark "
            f"embedding has {layout.num_landmarks}"
        )
    return detection.points


# --------------------------------------------------------------------------------------------
# The detector.


def default_model_path() -> Path:
    """Where the detector's model is looked for by default: cache_root()/mediapipe/."""
    return paths.cache_root() / "mediapipe" / MODEL_NAME


def read_model(model_path: Path | None = None) -> tuple[bytes, str]:
    """The FaceLandmarker bundle's bytes and where they came from (for messages).

    Looked for, in order: `model_path` (--detector_model: any bundle, unchecked);
    $FLAMENERF_LANDMARK_MODEL; `default_model_path()`. The last two must hold MediaPipe's
    face_landmarker.task (float16, version 1): its SHA-256 is checked.

    Raises:
      StepError: one line naming the path, and where to get the model when it is missing, or
        the digest found and the one expected.
    """
    if model_path is not None:
        path = Path(model_path)
        if not path.is_file():
            raise StepError(f"{path}: detector model (.task bundle) not found (--detector_model)")
        return path.read_bytes(), f"{path} (--detector_model)"
    from_env = os.environ.get(MODEL_ENV)
    path = Path(from_env).expanduser() if from_env else default_model_path()
    where = f"{path} (${MODEL_ENV})" if from_env else str(path)
    if not path.is_file():
        raise StepError(
            f"{where}: the face-landmark model is missing; download MediaPipe's {MODEL_NAME} "
            f"from {MODEL_URL} (listed on {MODEL_PAGE}) to this path, set ${MODEL_ENV} to it, "
            "or pass --detector_model PATH"
        )
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise StepError(
            f"{where}: SHA-256 {digest}; expected {MODEL_SHA256}, MediaPipe's {MODEL_NAME} "
            f"from {MODEL_URL} (pass another bundle with --detector_model PATH)"
        )
    return data, where


class FaceDetector:
    """MediaPipe FaceLandmarker on single images; use as a context manager.

        with FaceDetector() as detector:
            points = detector.detect(image)  # (478, 2) pixels, or None

    When several faces are found, the largest (by landmark bounding box) is returned.
    """

    def __init__(self, model_path: Path | None = None, max_faces: int = 4):
        try:
            import mediapipe
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError as error:
            raise StepError(
                f"the landmark detector is not available ({error}); {INSTALL_HINT}"
            ) from None
        data, where = read_model(model_path)
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=data),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=max_faces,
        )
        self._mediapipe = mediapipe
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except RuntimeError as error:  # e.g. "Unable to open zip archive."
            raise StepError(f"{where}: not a MediaPipe FaceLandmarker bundle ({error})") from None

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._landmarker.close()

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        """image: uint8 (H, W, 3) RGB -> (478, 2) continuous pixel coordinates, or None."""
        height, width = image.shape[:2]
        frame = self._mediapipe.Image(
            image_format=self._mediapipe.ImageFormat.SRGB, data=np.ascontiguousarray(image)
        )
        faces = self._landmarker.detect(frame).face_landmarks
        if not faces:
            return None
        candidates = [
            np.array([[p.x * width, p.y * height] for p in face], dtype=np.float64)
            for face in faces
        ]
        return max(candidates, key=lambda p: float(np.prod(np.ptp(p, axis=0))))
