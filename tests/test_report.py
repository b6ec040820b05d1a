"""The HTML report: one self-contained file with the tables and the plots as embedded PNGs."""

import base64
import html
import os
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

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


@pytest.mark.slow
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


def _text_boxes(fig):
    """(text, window extent) of the figure's title and every panel's title and axis labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    artists = [fig._suptitle] + [text for axis in fig.axes if axis.get_visible()
                                 for text in (axis.title, axis.xaxis.label, axis.yaxis.label)]
    return [(a.get_text(), a.get_window_extent(renderer)) for a in artists
            if a is not None and a.get_text()]


@pytest.mark.parametrize("formula, rename", [
    pytest.param("Reaction ~ Days + (1 | `Participant identifier number`)",
                 {"Subject": "Participant identifier number"}, marks=pytest.mark.slow),
    pytest.param("`Average reaction time (ms)` ~ Days + (Days | `Participant identifier "
                 "number`)", {"Subject": "Participant identifier number",
                              "Reaction": "Average reaction time (ms)"},
                 marks=pytest.mark.slow),  # 4 s: the default run's budget
    pytest.param("Reaction ~ Days + (1 | S)", {"Subject": "S"}, marks=pytest.mark.slow),
])
def test_report_plot_titles_are_whole_and_apart(formula, rename):
    """No title or axis label runs past the figure's edge or into another, however long the
    names of the response and the grouping factor."""
    from mixedmodels.output.report import _figures

    data = mm.datasets.load("sleepstudy").rename(columns=rename)
    fit = mm.lmer(formula, data)
    for caption, fig in _figures(fit, profile=False):
        boxes = _text_boxes(fig)
        width, height = fig.bbox.width, fig.bbox.height
        for text, box in boxes:
            assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, (
                caption, text)
        for k, (text, box) in enumerate(boxes):
            for other, other_box in boxes[k + 1:]:
                assert not box.overlaps(other_box), (caption, text, other)
        assert "`" not in "".join(text for text, _ in boxes)


@pytest.mark.slow
def test_report_names_the_ddf_method(fit, report, tmp_path):
    assert "Satterthwaite&#x27;s denominator degrees of freedom" in report.read_text()
    path = write_report(fit, tmp_path / "kr.html", ddf="kenward-roger", dpi=30)
    text = path.read_text()
    assert "Kenward-Roger&#x27;s denominator degrees of freedom" in text
    assert "Satterthwaite" not in text
    cells = {cell for table in parse(path).tables for cell in table}
    kr = fit.coef_table("kenward-roger")
    assert f"{kr.loc['Days', 'df']:.6g}" in cells and f"{kr.loc['Days', 'p']:.6g}" in cells
    with pytest.raises(ValueError, match="unknown ddf"):
        write_report(fit, tmp_path / "bad.html", ddf="welch")


@pytest.mark.slow
def test_report_shows_dropped_rows_and_warnings(fit, report, tmp_path):
    assert "Rows dropped for missing values: none." in report.read_text()
    assert "Warnings raised while fitting: none." in report.read_text()
    data = mm.datasets.load("sleepstudy")
    data.loc[[3, 16], "Reaction"] = float("nan")
    data.loc[40, "Days"] = float("nan")
    data["Days2"] = 2 * data["Days"]  # aliased: a second warning
    with pytest.warns(mm.DataWarning):
        holes = mm.lmer("Reaction ~ Days + Days2 + (Days | Subject)", data)
    text = write_report(holes, tmp_path / "holes.html", dpi=30).read_text()
    assert "Rows dropped for missing values: 3 of 180 (index 3, 16, 40)." in text
    assert len(holes.warnings) == 2
    for message in holes.warnings:
        assert html.escape(message) in text
    assert "help(" not in text


def test_fit_records_its_warnings_whatever_the_filters():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        singular = mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("dyestuff2"))
        refitted = singular.refit(singular.y)
    assert [m for m in singular.warnings if m.startswith("boundary (singular) fit")]
    assert singular.model.warnings == ()  # the data gave no warning; the fit did
    assert refitted.warnings == singular.warnings


def test_no_pointer_to_r_help():
    """Advice is given in the package's terms: no help('...') of R."""
    package = Path(mm.__file__).parent
    for path in package.rglob("*.py"):
        assert "help(" not in path.read_text(encoding="utf-8"), path


def test_report_of_a_dask_fit_leaves_out_the_row_plots(tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)",
                  dd.from_pandas(mm.datasets.load("sleepstudy"), npartitions=2))
    text = mm.write_report(fit, tmp_path / "dask.html").read_text()
    assert "are left out" in text and "Conditional modes of the random effects" in text
    assert "Residuals against fitted values" not in text
