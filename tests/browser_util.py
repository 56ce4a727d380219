# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""Headless Chromium for the viewer tests: find it, launch it with WebGL, open a page.

Chromium is Debian's `chromium` (`.ci/run` installs it; `FLAMENERF_CHROMIUM` names another
binary). It is driven through Playwright's Python package with `executable_path`: nothing is
downloaded (never `playwright install`). WebGL works in headless Chromium here only through
SwiftShader behind ANGLE (`--use-angle=swiftshader --enable-unsafe-swiftshader`; with
`--use-gl=swiftshader` the WebGL context is null).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--force-color-profile=srgb",  # the canvas' pixels as rendered, no colour management
]


def find_chromium() -> str | None:
    """The Chromium binary: $FLAMENERF_CHROMIUM, /usr/bin/chromium, or `chromium` on PATH."""
    for candidate in (os.environ.get("FLAMENERF_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def missing_reason() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if find_chromium() is None:
        return (
            "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it; "
            "or set FLAMENERF_CHROMIUM): the viewer's browser test needs it"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is missing (pip install -e '.[test]')"
    return None


@contextlib.contextmanager
def chromium():
    """A headless Chromium (Playwright Browser) with WebGL through SwiftShader."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=find_chromium(), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


class ViewerPage:
    """One index.html opened in a fresh page (1:1 pixels), with what it requested and logged."""

    def __init__(self, browser, path: Path, *, viewport=(1100, 800)):
        self.page = browser.new_page(
            viewport={"width": viewport[0], "height": viewport[1]}, device_scale_factor=1
        )
        self.requests: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.add_init_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation',"
            " e => window.__csp.push(e.blockedURI + ' ' + e.violatedDirective));"
        )
        self.url = Path(path).resolve().as_uri()
        self.page.goto(self.url)
        self.page.evaluate("() => window.flamenerf.ready")

    def close(self):
        self.page.close()

    def set_camera(
        self, world_from_camera: np.ndarray, projection: np.ndarray, size, supersample=None
    ):
        """A 4x4 world_from_camera (OpenGL) and clip matrix; the canvas becomes size (w, h);
        `supersample` k x k samples per pixel ("auto": the page's default; None: unchanged)."""
        camera = {
            "world_from_camera": [float(x) for x in np.asarray(world_from_camera).T.ravel()],
            "projection": [float(x) for x in np.asarray(projection).T.ravel()],
            "width": int(size[0]),
            "height": int(size[1]),
        }
        if supersample is not None:
            camera["supersample"] = supersample
        self.page.evaluate("c => window.flamenerf.setCamera(c)", camera)

    def set_params(self, expression=(), jaw=0.0, yaw=0.0, pitch=0.0) -> dict:
        return self.page.evaluate(
            "p => window.flamenerf.setParams(p)",
            {
                "expression": [float(x) for x in expression],
                "jaw": float(jaw),
                "yaw": float(yaw),
                "pitch": float(pitch),
            },
        )

    def canvas(self) -> np.ndarray:
        """(H, W, 3) float in [0, 1]: the canvas' drawing buffer after one render()."""
        from PIL import Image

        url = self.page.evaluate(
            "() => { window.flamenerf.render();"
            " return document.getElementById('view').toDataURL('image/png'); }"
        )
        data = base64.b64decode(url.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float64) / 255.0

    def remote_requests(self) -> list[str]:
        """Every request the page made other than its own file."""
        return [u for u in self.requests if u != self.url and not u.startswith(("data:", "blob:"))]

    def csp_violations(self) -> list[str]:
        return self.page.evaluate("() => window.__csp")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)
