# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf/export/page.py and the committed viewer bundle, without a browser.

The page is one self-contained file: the bundle inlined verbatim, the glb base64-inlined, no
remote URL fetched. The committed bundle is what its sources build: the manifest records the
SHA-256 of the bundle and of its sources, and, when node and the npm packages are installed
(`npm ci` in flamenerf/export/viewer; .ci/run does it), a rebuild reproduces it byte for byte.
"""

import base64
import hashlib
import html.parser
import json
import re
import runpy
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import setuptools
from glb_util import glb_bytes, tiny_avatar
from setuptools.dist import Distribution

from flamenerf.errors import UserError
from flamenerf.export import page

ROOT = Path(__file__).resolve().parents[2]
VIEWER = ROOT / "flamenerf" / "export" / "viewer"
DIST = VIEWER / "dist"
# Namespace names the bundle may mention (document.createElementNS): identifiers, never fetched.
NAMESPACES = {"http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def glb():
    return glb_bytes(tiny_avatar())


class _Scripts(html.parser.HTMLParser):
    """The page's elements: every tag with its attributes, and the text of each <script>."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._open = dict(attrs)
            self.scripts.append((self._open, ""))

    def handle_data(self, data):
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


def _parsed(text: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(text)
    parser.close()
    return parser


def test_the_page_holds_the_bundle_and_the_glb(tmp_path, glb):
    path = tmp_path / "out" / "index.html"  # the folder is created
    page.write_page(glb, path, title="tiny <avatar> & co")
    text = path.read_text(encoding="utf-8")
    parsed = _parsed(text)
    scripts = parsed.scripts
    assert len(scripts) == 2
    data_attrs, data = scripts[0]
    assert data_attrs == {"id": "avatar-glb", "type": "application/octet-stream"}
    assert base64.b64decode("".join(data.split()), validate=True) == glb
    code_attrs, code = scripts[1]
    assert code_attrs == {}
    assert code.strip() == (DIST / "viewer.min.js").read_text(encoding="ascii").strip()
    # The DOM the viewer fills in, and the title, escaped.
    tags = dict((t, a) for t, a in parsed.tags if t in ("canvas", "title"))
    assert tags["canvas"] == {"id": "view"}
    assert "<title>tiny &lt;avatar&gt; &amp; co</title>" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html"]  # no temporary left


def test_the_page_loads_nothing_from_anywhere(tmp_path, glb):
    """No element has a src/href; the CSP forbids every fetch; the bundle names no remote URL
    except XML namespaces, and has no dynamic import or worker."""
    path = tmp_path / "index.html"
    page.write_page(glb, path, title="tiny")
    text = path.read_text(encoding="utf-8")
    parsed = _parsed(text)
    for tag, attrs in parsed.tags:
        assert not {"src", "href", "srcset", "action"} & set(attrs), (tag, attrs)
    assert not any(tag in ("link", "iframe", "img", "object", "embed") for tag, _ in parsed.tags)
    csp = next(a for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy")
    directives = dict(d.strip().split(" ", 1) for d in csp["content"].split(";"))
    assert directives["default-src"] == "'none'"
    assert not any("http" in v or "*" in v for v in directives.values())
    bundle = (DIST / "viewer.min.js").read_text(encoding="ascii")
    urls = set(re.findall(r"(?:https?|wss?|ftp)://[^\s\"'`)]+", bundle))
    assert urls <= NAMESPACES, sorted(urls - NAMESPACES)
    assert not re.search(r"[\"'`]//[A-Za-z0-9-]+\.[A-Za-z]", bundle)  # protocol-relative URLs
    assert not re.search(r"\bimport\s*\(", bundle)
    assert not re.search(r"\b(importScripts|Worker|SharedWorker|WebSocket|EventSource)\b", bundle)
    assert "sendBeacon" not in bundle


def test_an_existing_page_is_replaced(tmp_path, glb):
    path = tmp_path / "index.html"
    path.write_text("old")
    page.write_page(glb, path, title="tiny")
    assert path.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    "data, found",
    [
        (b"", "0 bytes"),
        (b"GLTF" + bytes(20), "magic=b'GLTF'"),
        (b"glTF\x01\0\0\0\x18\0\0\0" + bytes(12), "version=1"),
        (b"glTF\x02\0\0\0\x99\0\0\0" + bytes(12), "length=153 for 24 bytes"),
    ],
)
def test_bad_glb_bytes_are_refused_and_nothing_is_written(tmp_path, data, found):
    path = tmp_path / "index.html"
    with pytest.raises(UserError) as info:
        page.write_page(data, path, title="x")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and found in message and "\n" not in message
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_the_committed_bundle_is_the_one_its_manifest_records():
    manifest = json.loads((DIST / "manifest.json").read_text())
    bundle = (DIST / "viewer.min.js").read_bytes()
    assert manifest["bundle"] == "viewer.min.js"
    assert hashlib.sha256(bundle).hexdigest() == manifest["sha256"]
    assert len(bundle) == manifest["bytes"]
    # ... built from today's sources: a changed src/viewer.js, build script or lock file needs
    # `npm ci && npm run build` in flamenerf/export/viewer.
    for name, digest in manifest["sources"].items():
        assert hashlib.sha256((VIEWER / name).read_bytes()).hexdigest() == digest, (
            f"flamenerf/export/viewer/{name} changed since dist/ was built: run `npm ci && npm "
            "run build` there"
        )
    # ... with the versions package-lock.json pins.
    lock = json.loads((VIEWER / "package-lock.json").read_text())["packages"]
    assert manifest["three"] == lock["node_modules/three"]["version"]
    assert manifest["esbuild"] == lock["node_modules/esbuild"]["version"]
    package = json.loads((VIEWER / "package.json").read_text())
    assert package["dependencies"]["three"] == manifest["three"]  # exact pins
    assert package["devDependencies"]["esbuild"] == manifest["esbuild"]


def test_three_js_licence_ships_beside_the_bundle():
    licence = (DIST / "THREE_LICENSE.txt").read_text(encoding="utf-8")
    assert licence.startswith("The MIT License") and "three.js authors" in licence
    bundle = (DIST / "viewer.min.js").read_text(encoding="ascii")
    assert "@license" in bundle and "SPDX-License-Identifier: MIT" in bundle


def test_setup_py_ships_the_viewer_bundle(monkeypatch):
    """setuptools' own list of the package data a wheel gets (build_py)."""
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    keys = ("name", "packages", "package_dir", "package_data")
    build_py = Distribution({k: captured[k] for k in keys}).get_command_obj("build_py")
    build_py.ensure_finalized()
    shipped = {
        (Path(source) / name).resolve().relative_to(ROOT).as_posix()
        for package, source, _, files in build_py.data_files
        if package == "flamenerf.export"
        for name in files
    }
    expected = {f"flamenerf/export/viewer/dist/{p.name}" for p in DIST.iterdir()}
    assert shipped == expected
    assert "flamenerf.export" in captured["packages"]


def test_a_rebuild_from_the_lock_file_is_byte_identical():
    node = shutil.which("node")
    if node is None or not (VIEWER / "node_modules" / "esbuild" / "package.json").is_file():
        pytest.skip(
            "node or the viewer's npm packages are missing (cd flamenerf/export/viewer && npm ci; "
            ".ci/run does it): cannot rebuild the bundle"
        )
    done = subprocess.run(
        [node, "build.mjs", "--check"], cwd=VIEWER, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reproduced byte-identically" in done.stdout
