# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The viewer page, `DIR/index.html`: one self-contained file that shows an avatar.glb.

`write_page(glb, path, title=...)` writes a single HTML file holding

- the viewer bundle, `viewer/dist/viewer.min.js` (three.js with its GLTFLoader and
  OrbitControls and `viewer/src/viewer.js`, bundled by esbuild from the npm packages pinned in
  `viewer/package-lock.json`; committed, shipped as package data; `viewer/build.mjs` rebuilds it
  byte-identically), inlined in a `<script>`;
- the glb, base64-encoded in `<script id="avatar-glb" type="application/octet-stream">`.

The page needs no network: it opens from `file://`, and its Content-Security-Policy forbids
every fetch (`default-src 'none'`), so a stray remote URL fails loudly instead of leaking. The
DOM, the controls and the test API (`window.flamenerf`) are those of the avatar asset contract:
`<canvas id="view">`, sliders `expression-00`..., `jaw`, `yaw`, `pitch`, buttons `play` and
`reset`, `<select id="animation">` when the asset has animations.
"""

from __future__ import annotations

import base64
import html
import os
import struct
import tempfile
from pathlib import Path

from flamenerf.errors import UserError

VIEWER_DIST = Path(__file__).resolve().parent / "viewer" / "dist"
BUNDLE = VIEWER_DIST / "viewer.min.js"
GLB_ELEMENT_ID = "avatar-glb"

# Inline scripts and styles only; no fetch of any kind (data: and blob: stay local).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; connect-src data: blob:"
)

_STYLE = """
html, body { margin: 0; background: #111; color: #ddd; font: 13px/1.4 system-ui, sans-serif; }
main { display: flex; flex-wrap: wrap; gap: 12px; padding: 12px; align-items: flex-start; }
canvas#view { display: block; background: #000; max-width: 100%; cursor: grab; }
#controls { min-width: 260px; max-width: 340px; }
#controls h2 { font-size: 12px; margin: 10px 0 4px; color: #999; font-weight: normal; }
#controls .row { display: grid; grid-template-columns: 96px 1fr 52px; gap: 6px;
  align-items: center; }
#controls .row input { width: 100%; }
#controls output { font-variant-numeric: tabular-nums; text-align: right; }
#controls .buttons { display: flex; gap: 6px; }
#error { color: #f66; white-space: pre-wrap; }
header { padding: 8px 12px 0; font-size: 15px; }
""".strip()


def viewer_bundle() -> str:
    """The committed viewer bundle (package data), as text."""
    try:
        code = BUNDLE.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(
            f"{BUNDLE}: the viewer bundle is missing or unreadable ({error}); expected the "
            "package data of flamenerf (reinstall, or rebuild it: cd flamenerf/export/viewer && "
            "npm ci && npm run build)"
        ) from None
    for forbidden in ("</script", "<!--"):
        if forbidden in code.lower():
            raise UserError(f"{BUNDLE}: the bundle contains {forbidden!r}, cannot be inlined")
    return code


def _check_glb(glb: bytes, path: Path) -> None:
    """The 12-byte glTF binary header: magic 'glTF', version 2, total length = len(glb)."""
    if not isinstance(glb, bytes | bytearray | memoryview):
        raise UserError(f"{path}: the avatar must be glb bytes, found {type(glb).__name__}")
    if len(glb) < 12:
        raise UserError(f"{path}: the avatar is {len(glb)} bytes, expected a glTF binary (glb)")
    magic, version, length = struct.unpack_from("<4sII", glb)
    if magic != b"glTF" or version != 2 or length != len(glb):
        raise UserError(
            f"{path}: the avatar's glb header is magic={magic!r} version={version} "
            f"length={length} for {len(glb)} bytes, expected magic=b'glTF' version=2 and the "
            "length of the data"
        )


def page_html(glb: bytes, *, title: str) -> str:
    """The text of index.html for the glb bytes (see the module docstring)."""
    data = base64.b64encode(bytes(glb)).decode("ascii")
    lines = [data[i : i + 76] for i in range(0, len(data), 76)] or [""]
    name = html.escape(title)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="flamenerf.export">',
            f"<title>{name}</title>",
            f"<style>\n{_STYLE}\n</style>",
            "</head>",
            "<body>",
            f"<header>{name}</header>",
            "<main>",
            '<canvas id="view"></canvas>',
            '<div id="controls"><div id="error" hidden></div></div>',
            "</main>",
            f'<script id="{GLB_ELEMENT_ID}" type="application/octet-stream">',
            *lines,
            "</script>",
            "<script>",
            viewer_bundle(),
            "</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def write_page(glb: bytes, path: str | os.PathLike, *, title: str) -> None:
    """Writes the self-contained viewer page for `glb` (avatar.glb's bytes) to `path`.

    The file is replaced atomically (a temporary file in the same folder, then a rename); the
    parent folder is created if needed. Raises `UserError` when `glb` is not a glTF binary.
    """
    path = Path(path)
    _check_glb(glb, path)
    text = page_html(glb, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the page from a web server
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
