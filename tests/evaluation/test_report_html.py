# Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
"""flamenerf.evaluation.report_html: the page's metrics, its links and its escaping, read back
with the standard library's HTML parser."""

import math
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np

from flamenerf.evaluation import report_html
from flamenerf.io.media import write_png


class Page(HTMLParser):
    """Collects the links, image sources, table cells and text of a page."""

    def __init__(self, text):
        super().__init__()
        self.links, self.sources, self.cells, self.text = [], [], [], []
        self._in_cell = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            self.links.append(attrs["href"])
        if tag == "img":
            self.sources.append(attrs["src"])
        if tag in ("td", "th"):
            self._in_cell = True
            self.cells.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells[-1] += data


ODD = 'a&b <c> "d"'  # a frame id that needs escaping and quoting


def report():
    return {
        "step": 20,
        "checkpoint": "/exp/checkpoints/20",
        "scale": 1,
        "frames": {
            "v00": {"psnr": 21.256, "ms_ssim_scales": 2, "disent_driver": "v01"},
            ODD: {"psnr": math.nan, "ms_ssim_scales": 2, "disent_driver": "v00"},
        },
        "mean": {"psnr": 21.256, "ms_ssim_scales": 2},
        "distance": {"pearson": -0.5, "near_third_psnr": 22.0, "far_third_psnr": 20.5},
    }


def test_the_page_shows_the_metrics_and_escapes_every_text():
    images = {"v00": [("target", "v00_target.png")], ODD: [("error <x>", f"{ODD}_error.png")]}
    text = report_html.html_page(report(), images, "exp <1>: step 20")
    assert ODD not in text and "<c>" not in text and "<x>" not in text and "<1>" not in text
    page = Page(text)
    assert "exp <1>: step 20" in page.text and "error <x>" in page.text
    # Metrics table: header, the mean row, then a row per frame, with the registry formats.
    assert page.cells[:3] == ["frame", "psnr", "ms_ssim_scales"]
    assert page.cells[3:6] == ["mean", "21.26", "2"]
    assert page.cells[6:9] == ["v00", "21.26", "2"]
    assert page.cells[9:12] == [ODD, "nan", "2"]
    assert "disent_driver" in page.cells and "v01" in page.cells  # the text-valued column
    assert "psnr_near_third" in page.cells and "22.00" in page.cells
    assert "Pearson r" in page.cells and "-0.5" in page.cells
    assert "code_dependence" not in page.cells  # a report without the code swap
    # Links come back as the relative paths given, for each picture a link and an image.
    paths = [unquote(s) for s in page.sources]
    assert paths == ["v00_target.png", f"{ODD}_error.png"]
    assert [unquote(link) for link in page.links] == ["metrics.json", *paths]


def test_the_page_shows_the_nearest_camera_and_the_code_swap():
    page = report()
    page["distance"].update(
        pearson_nearest_train=-0.75,
        far_third_nearest_train_m=0.038,
        code_swap={"rendered": 8, "code_dependence_db": 0.7612},
    )
    cells = Page(report_html.html_page(page, {}, "exp")).cells
    row = lambda label: cells[cells.index(label) + 1]
    assert row("code_dependence") == "0.76"
    assert row("Pearson r, distance to the nearest training camera") == "-0.75"
    assert row("far third: distance to the nearest training camera (m)") == "0.038"
    assert row("code swap: far frames rendered with other codes") == "8"


def test_write_html_links_the_pictures_that_exist(tmp_path):
    for frame_id in ("v00", ODD):
        for kind in ("target", "prediction", "error", "depth", "disent"):
            write_png(tmp_path / f"{frame_id}_{kind}.png", np.zeros((2, 2, 3)))
    (tmp_path / "metrics.json").write_text("{}")
    path = report_html.write_html(tmp_path, report(), "exp: step 20")
    assert path == tmp_path / "index.html"
    page = Page(path.read_text(encoding="utf-8"))
    assert len(page.sources) == 10  # no acc PNG written: not linked
    for link in page.links + page.sources:
        assert (tmp_path / unquote(link)).is_file(), link
    assert not list(tmp_path.glob("*.tmp"))
