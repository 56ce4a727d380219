# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The avatar viewer's speed and budget: DIR/index.html in headless Chromium, a markdown table.

    python benchmarks/viewer_speed.py DIR        # DIR written by python -m flamenerf.export
    python benchmarks/viewer_speed.py DIR --frames 50 --size 512
    python benchmarks/viewer_speed.py DIR --screenshot docs/viewer.png   # the README's picture

Opens the page from file:// in Debian's headless Chromium (WebGL through SwiftShader behind
ANGLE: software rendering, so the frame time is indicative; what counts is the budget: asset
bytes, triangles, draw calls), puts the asset's default camera on a SIZE x SIZE canvas (a
non-square default camera is stretched), and reports the page's own measurement
(`window.flamenerf.frameTime(N)`: N synchronous renders, each waited for with a 1-pixel
readPixels), the WebGL renderer string, triangles, vertices and draw calls
(`window.flamenerf.info()`), and the sizes of avatar.glb and index.html. `--screenshot PATH`
saves the whole page (canvas and controls) at its own layout, with the sliders set by
`--expression`, `--jaw`, `--yaw`, `--pitch`.

Needs Playwright's Python package (the `test` extra) and Chromium (`apt-get install chromium`
or FLAMENERF_CHROMIUM=PATH); nothing is downloaded. The launch flags are those of
tests/browser_util.py.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import struct
import sys
import time
from pathlib import Path

# tests/browser_util.py's flags: WebGL in headless Chromium only works through ANGLE's SwiftShader.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--force-color-profile=srgb",
]


def find_chromium() -> str | None:
    for candidate in (os.environ.get("FLAMENERF_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def page_extras(html: str) -> tuple[dict, int]:
    """asset.extras.flamenerf of the glb inlined in an index.html, and the glb's size."""
    found = re.search(r'<script id="avatar-glb"[^>]*>(.*?)</script>', html, flags=re.S)
    if found is None:
        raise ValueError('no <script id="avatar-glb"> in the page: not a flamenerf viewer page')
    glb = base64.b64decode("".join(found.group(1).split()))
    length, kind = struct.unpack_from("<I4s", glb, 12)
    if glb[:4] != b"glTF" or kind != b"JSON":
        raise ValueError("the inlined asset is not a glb with a JSON chunk")
    return json.loads(glb[20 : 20 + length])["asset"]["extras"]["flamenerf"], len(glb)


def measure(args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    folder = Path(args.dir)
    index = folder / "index.html" if folder.is_dir() else folder
    if not index.is_file():
        print(f"error: {index}: not found (expected DIR/index.html)", file=sys.stderr)
        return 2
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print(
            "error: Chromium not found (apt-get install chromium, or --chromium PATH)",
            file=sys.stderr,
        )
        return 2
    html = index.read_text(encoding="utf-8")
    try:
        extras, glb_bytes = page_extras(html)
    except (ValueError, KeyError, struct.error) as error:
        print(f"error: {index}: {error}", file=sys.stderr)
        return 2
    glb_file = index.parent / "avatar.glb"
    camera = extras["default_camera"]
    count = len(extras["expression_names"])
    expression = [float(x) for x in (args.expression or [])][:count]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(
                viewport={"width": args.viewport[0], "height": args.viewport[1]},
                device_scale_factor=1,
            )
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            started = time.perf_counter()
            page.goto(index.resolve().as_uri())
            page.evaluate("() => window.flamenerf.ready")
            load_ms = (time.perf_counter() - started) * 1000
            page.evaluate(
                "p => window.flamenerf.setParams(p)",
                {"expression": expression, "jaw": args.jaw, "yaw": args.yaw, "pitch": args.pitch},
            )
            if args.screenshot:
                page.evaluate("() => window.flamenerf.render()")
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.screenshot, full_page=True)
            page.evaluate(
                "c => window.flamenerf.setCamera(c)",
                {
                    "world_from_camera": camera["world_from_camera"],
                    "projection": camera["projection"],
                    "width": args.size,
                    "height": args.size,
                },
            )
            frame_ms = page.evaluate("n => window.flamenerf.frameTime(n)", args.frames)
            info = page.evaluate("() => window.flamenerf.info()")
        finally:
            browser.close()
    if errors:
        print(f"error: the page reported: {errors}", file=sys.stderr)
        return 1
    rows = [
        ("page", str(index)),
        ("canvas", f"{args.size} x {args.size}"),
        (
            f"frame time (mean of {args.frames} frames)",
            f"{frame_ms:.2f} ms ({1000 / frame_ms:.0f} fps)",
        ),
        ("page ready after", f"{load_ms:.0f} ms"),
        ("WebGL renderer", info["renderer"]),
        ("triangles", f"{info['triangles']:,}"),
        ("vertices", f"{info['vertices']:,}"),
        ("draw calls", str(info["drawCalls"])),
        ("avatar.glb", f"{(glb_file.stat().st_size if glb_file.is_file() else glb_bytes):,} bytes"),
        ("index.html", f"{index.stat().st_size:,} bytes"),
    ]
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value.replace('|', '/')} |")
    if args.screenshot:
        print(f"\nscreenshot: {args.screenshot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="the export folder (DIR/index.html) or an index.html")
    parser.add_argument("--frames", type=int, default=30, help="timed frames")
    parser.add_argument("--size", type=int, default=512, help="canvas side (pixels) for the timing")
    parser.add_argument("--screenshot", help="save a PNG of the whole page (canvas and sliders)")
    parser.add_argument(
        "--expression", type=float, nargs="*", help="expression sliders (screenshot)"
    )
    parser.add_argument("--jaw", type=float, default=0.0, help="jaw slider (radians)")
    parser.add_argument("--yaw", type=float, default=0.0, help="yaw slider (radians)")
    parser.add_argument("--pitch", type=float, default=0.0, help="pitch slider (radians)")
    parser.add_argument(
        "--viewport", type=int, nargs=2, default=[900, 600], help="browser window (CSS pixels)"
    )
    parser.add_argument(
        "--chromium", help="Chromium binary (default: FLAMENERF_CHROMIUM, chromium)"
    )
    return measure(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
