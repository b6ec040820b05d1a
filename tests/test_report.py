"""The HTML report: one self-contained file with the tables and the plots as embedded PNGs."""

import base64
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import mixedmodels as mm  # noqa: E402
from mixedmodels.output.report import write_report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Collector(HTMLParser):
    """Tags, images, tables (as cell texts) and any external reference."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.images = []
        self.tables = []
        self.external = []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self.tables.append([])
        if tag in ("td", "th"):
            self._cell = ""
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith("data:"):
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def fit():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def report(fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "fit.html"
    returned = write_report(fit, path, title="Sleep <study> report")
    assert returned == path
    return path


def parse(path):
    collector = Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    collector.close()
    return collector


def test_report_is_self_contained_html(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = parse(report)
    assert page.tags.count("html") == 1 and "body" in page.tags and "style" in page.tags
    assert page.external == []  # no network: no src/href outside data: URIs
    assert "<script" not in text and "<link" not in text
    assert "<title>Sleep &lt;study&gt; report</title>" in text  # the title is escaped


def test_report_contains_the_tables(fit, report):
    text = report.read_text(encoding="utf-8")
    page = parse(report)
    assert len(page.tables) >= 4  # summary tables + coef table + varcorr
    cells = {cell for table in page.tables for cell in table}
    # the summary, laid out as lme4's: estimate 251.405, std. error 6.825
    assert '<div class="mixedmodels-summary">' in text
    assert "251.405" in cells and "6.825" in cells
    # coef_table() and varcorr at 6 significant digits
    coef = fit.coef_table()
    for value in (coef.loc["(Intercept)", "estimate"], coef.loc["Days", "estimate"],
                  coef.loc["Days", "std_error"]):
        assert f"{value:.6g}" in cells
    assert f"{fit.fixef['Days']:.6g}" == "10.4673"
    for value in fit.varcorr["sdcor"]:
        assert f"{value:.6g}" in cells
    assert "coef-table" in text and "varcorr-table" in text
    assert "Residual" in cells and "Subject" in cells
    assert "None" not in cells and "nan" not in cells  # missing var2 shows as an empty cell


def test_report_images_are_png(report):
    page = parse(report)
    images = [src for src in page.images if src.startswith("data:image/png;base64,")]
    assert len(images) >= 4 and len(images) == len(page.images)
    for src in images:
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 1000


def test_report_with_profile(tmp_path):
    small = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("dyestuff"), reml=False)
    path = write_report(small, tmp_path / "dyestuff.html", profile=True, dpi=50)
    page = parse(path)
    assert any("Profile zeta" in alt for alt in re.findall(r'alt="([^"]*)"', path.read_text()))
    assert len(page.images) >= 4  # residuals, QQ, caterpillar, QQ ranef, profile


def _chromium():
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = report.resolve().as_uri()
    env = dict(os.environ)
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True,
                         text=True, timeout=60, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table") >= 4
    assert "251.405" in dom.stdout
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', dom.stdout)) >= 4
    run = subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,2000",
                          url], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes().startswith(PNG_MAGIC)


def test_report_crossed_factors_has_plots_per_factor(tmp_path):
    crossed = mm.lmer("diameter ~ 1 + (1 | plate) + (1 | sample)",
                      mm.datasets.load("penicillin"))
    path = write_report(crossed, tmp_path / "penicillin.html", dpi=40)
    alts = re.findall(r'alt="([^"]*)"', path.read_text())
    assert sum("random effects for plate" in a for a in alts) == 2  # caterpillar and QQ
    assert sum("random effects for sample" in a for a in alts) == 2
    assert not any("per " in a for a in alts)  # no covariate to draw group panels against
