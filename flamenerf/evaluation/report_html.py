# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""The HTML page of an evaluation: `EXP/eval/step_N/index.html`.

One self-contained page (no script, no server, no file outside its folder) that opens from
the experiment folder in any browser: the mean metrics, the metrics of every frame, PSNR
against the distance to the code frame's camera, and every frame's pictures (target,
prediction, error, depth, opacity, disentanglement figure) linked by relative paths to the
PNGs `evaluate.evaluate` writes beside it. Pure string building: every text taken from the
report (frame ids, names, paths) is HTML-escaped, every link URL-quoted.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flamenerf.evaluation import metrics
from flamenerf.io import paths

# The per-frame pictures, in page order: (file suffix of `ID_SUFFIX.png`, caption).
FRAME_IMAGES = (
    ("target", "target"),
    ("prediction", "prediction"),
    ("error", "error (mean absolute, fixed scale)"),
    ("depth", "depth"),
    ("acc", "opacity"),
    ("disent", "disentanglement: render | other expression | change (cyan: face region)"),
)

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.mean td { font-weight: bold; background: #f3f3f3; }
figure { display: inline-block; margin: 0 0.6em 0.6em 0; vertical-align: top; }
figure img { height: 12em; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-size: 0.8em; max-width: 24em; }
"""


def format_cell(name: str, value: Any) -> str:
    """A metric's value as its table cell (`Metric.format`, counts as integers): None -> "",
    NaN or infinity -> "nan", text as it is (not escaped here)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return "nan"
    metric = metrics.METRICS.get(name)
    if metric is not None and metric.integer and float(value).is_integer():
        return str(int(value))
    return format(value, metric.format if metric is not None else ".4g")


def link(path: str) -> str:
    """A relative file path as an attribute value: URL-quoted, then HTML-escaped."""
    return html.escape(quote(path, safe="/"), quote=True)


def _table(header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """An HTML table; rows are (CSS class or "", cells); every text is escaped here."""
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for css, cells in rows:
        opening = f'<tr class="{html.escape(css)}">' if css else "<tr>"
        lines.append(opening + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    lines.append("</table>")
    return lines


def frame_images(folder: Path, frame_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """{frame id: [(caption, file name)]}: the `FRAME_IMAGES` of each frame found in
    `folder` (files that do not exist are left out)."""
    return {
        frame_id: [
            (caption, f"{frame_id}_{suffix}.png")
            for suffix, caption in FRAME_IMAGES
            if (folder / f"{frame_id}_{suffix}.png").is_file()
        ]
        for frame_id in frame_ids
    }


def html_page(
    report: Mapping[str, Any],
    images: Mapping[str, Sequence[tuple[str, str]]],
    title: str,
) -> str:
    """The page of an evaluation report (the metrics.json dictionary).

    Args:
      report: {"step", "checkpoint", "scale", "frames": {id: {name: value}}, "mean": {...},
        "distance": {...}} (`evaluate.evaluate`).
      images: {frame id: [(caption, relative path)]}, e.g. `frame_images`.
      title: the page's heading (e.g. the experiment folder's name and the step).

    Returns:
      The HTML text.
    """
    frames = report.get("frames", {})
    means = report.get("mean", {})
    columns = [name for name, value in means.items() if not isinstance(value, str)]
    extra = [
        name
        for name in dict.fromkeys(k for values in frames.values() for k in values)
        if name not in columns
    ]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    facts = [
        ("step", report.get("step")),
        ("checkpoint", report.get("checkpoint")),
        ("image scale", report.get("scale")),
        ("frames", len(frames)),
    ]
    out.append("<p>")
    out += [f"{html.escape(k)}: <code>{html.escape(str(v))}</code><br>" for k, v in facts]
    out += ['<a href="metrics.json">metrics.json</a>', "</p>"]

    out.append("<h2>Metrics</h2>")
    rows = [("mean", ["mean"] + [format_cell(c, means.get(c)) for c in columns])]
    rows += [
        ("", [str(fid)] + [format_cell(c, values.get(c)) for c in columns])
        for fid, values in frames.items()
    ]
    out += _table(["frame", *columns], rows)
    if extra:
        rows = [
            ("", [str(fid)] + [format_cell(c, values.get(c)) for c in extra])
            for fid, values in frames.items()
        ]
        out += _table(["frame", *extra], rows)

    distance = report.get("distance") or {}
    summary = [
        (name, format_cell(name, metric.fn(report)))
        for name, metric in metrics.METRICS.items()
        if metric.kind == "report" and metric.fn(report) is not None
    ]
    for key, label in (
        ("pearson", "Pearson r"),
        ("near_minus_far", "near_minus_far (dB)"),
        ("pearson_nearest_train", "Pearson r, distance to the nearest training camera"),
        ("far_third_nearest_train_m", "far third: distance to the nearest training camera (m)"),
    ):
        if key in distance:
            summary.append((label, format_cell("", distance[key])))
    if "code_swap" in distance:
        count = distance["code_swap"]["rendered"]
        summary.append(("code swap: far frames rendered with other codes", str(count)))
    if summary:
        out.append("<h2>Free view: PSNR against the distances, the code swap</h2>")
        out += _table(["", "value"], [("", list(row)) for row in summary])

    out.append("<h2>Frames</h2>")
    for fid in frames:
        out.append(f'<h3 id="{html.escape(quote(str(fid), safe=""), quote=True)}">')
        out.append(f"{html.escape(str(fid))}</h3>")
        for caption, path in images.get(fid, ()):
            out.append(
                f'<figure><a href="{link(path)}"><img src="{link(path)}" '
                f'alt="{html.escape(f"{fid} {caption}", quote=True)}"></a>'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def write_html(
    folder: str | Path, report: Mapping[str, Any], title: str, name: str = "index.html"
) -> paths.AnyPath:
    """Writes `html_page` of the report, linking the frames' PNGs found in `folder`, to
    `folder/name` (atomically); returns its path."""
    folder = paths.as_path(folder)
    page = html_page(report, frame_images(folder, list(report.get("frames", {}))), title)
    path = folder / name
    paths.write_atomic(path, page, encoding="utf-8")
    return path
