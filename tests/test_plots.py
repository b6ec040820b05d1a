"""The diagnostic plots render under Agg and draw what they claim: points, intervals, labels."""

import numpy as np
import pytest
import scipy.stats

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

import mixedmodels as mm  # noqa: E402
from mixedmodels.output import plots  # noqa: E402


@pytest.fixture(scope="module")
def sleep_fit():
    return mm.lmer("Reaction ~ Days + (Days | Subject)", mm.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def dyestuff_ml():
    return mm.lmer("Yield ~ 1 + (1 | Batch)", mm.datasets.load("dyestuff"), reml=False)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def visible_axes(fig):
    return [a for a in fig.axes if a.get_visible()]


def render(fig):
    fig.canvas.draw()  # catches errors that only show when drawing


def test_caterpillar_intervals_are_z_condsd(sleep_fit):
    fig = plots.caterpillar(sleep_fit, level=0.95)
    render(fig)
    axes = visible_axes(fig)
    assert [a.get_title() for a in axes] == ["(Intercept)", "Days"]
    table = sleep_fit.ranef_table()
    z = scipy.stats.norm.ppf(0.975)
    for axis in axes:
        assert "Conditional mode" in axis.get_xlabel()
        containers = [c for c in axis.containers if isinstance(c, ErrorbarContainer)]
        assert len(containers) == 1
        data_line, _, (bars,) = containers[0].lines
        x, y = data_line.get_data()
        assert len(x) == 18  # one point per Subject
        rows = table[table["term"] == axis.get_title()].set_index("grp")
        labels = [t.get_text() for t in axis.get_yticklabels()]
        assert sorted(labels) == sorted(rows.index)
        expected = rows.loc[labels]
        np.testing.assert_allclose(x, expected["condval"], rtol=1e-12)
        segments = np.array(bars.get_segments())
        assert segments.shape == (18, 2, 2)
        half = (segments[:, 1, 0] - segments[:, 0, 0]) / 2
        centre = (segments[:, 1, 0] + segments[:, 0, 0]) / 2
        np.testing.assert_allclose(half, z * expected["condsd"], rtol=1e-10)
        np.testing.assert_allclose(centre, expected["condval"], rtol=1e-10, atol=1e-10)
    # sorted by the first term's conditional mode, rows aligned across panels
    first = visible_axes(fig)[0].containers[0].lines[0].get_xdata()
    assert np.all(np.diff(first) >= 0)
    assert axes[0].get_ylabel() == "Level of Subject"


def test_caterpillar_one_term_into_given_axes(sleep_fit):
    fig, ax = plt.subplots()
    assert plots.caterpillar(sleep_fit, term="Days", level=0.5, ax=ax) is fig
    (container,) = ax.containers
    half = np.diff(np.array(container.lines[2][0].get_segments())[:, :, 0], axis=1).ravel() / 2
    rows = sleep_fit.ranef_table().query("term == 'Days'")
    assert sorted(half) == pytest.approx(sorted(scipy.stats.norm.ppf(0.75) * rows["condsd"]))
    with pytest.raises(ValueError, match="unknown term"):
        plots.caterpillar(sleep_fit, term="nope")
    with pytest.raises(ValueError, match="unknown grouping factor"):
        plots.caterpillar(sleep_fit, group="nope")


def test_residuals_vs_fitted(sleep_fit):
    fig = plots.residuals_vs_fitted(sleep_fit)
    render(fig)
    (axis,) = fig.axes
    (points,) = axis.collections
    offsets = np.asarray(points.get_offsets())
    assert offsets.shape == (180, 2)
    np.testing.assert_allclose(offsets[:, 0], sleep_fit.fitted)
    np.testing.assert_allclose(offsets[:, 1], sleep_fit.residuals)
    assert axis.get_xlabel() == "Fitted values"
    assert axis.get_ylabel() == "Residuals"


def test_qq_residuals(sleep_fit):
    fig, ax = plt.subplots()
    assert plots.qq_residuals(sleep_fit, ax=ax) is fig
    render(fig)
    offsets = np.asarray(ax.collections[0].get_offsets())
    assert offsets.shape == (180, 2)
    np.testing.assert_allclose(offsets[:, 1], np.sort(sleep_fit.residuals))
    # R's qqnorm: qnorm(ppoints(180)), ppoints(n) = (i - 1/2) / n for n > 10
    np.testing.assert_allclose(offsets[:, 0], scipy.stats.norm.ppf((np.arange(180) + 0.5) / 180))
    assert ax.get_xlabel() == "Theoretical quantiles"
    assert ax.get_ylabel() == "Residuals"


def test_qq_ranef(sleep_fit):
    fig = plots.qq_ranef(sleep_fit)
    render(fig)
    axes = visible_axes(fig)
    assert [a.get_title() for a in axes] == ["(Intercept)", "Days"]
    for axis in axes:
        offsets = np.asarray(axis.collections[0].get_offsets())
        assert offsets.shape == (18, 2)
        np.testing.assert_allclose(offsets[:, 1],
                                   np.sort(sleep_fit.ranef["Subject"][axis.get_title()]))
        assert axis.get_xlabel() == "Theoretical quantiles"


def test_normal_quantiles_small_n_uses_three_eighths():
    np.testing.assert_allclose(plots.normal_quantiles(5),
                               scipy.stats.norm.ppf((np.arange(1, 6) - 0.375) / 5.25))


@pytest.mark.slow
def test_group_panels(sleep_fit):
    fig = plots.group_panels(sleep_fit, "Days")
    render(fig)
    axes = visible_axes(fig)
    assert len(axes) == 18
    data = mm.datasets.load("sleepstudy")
    for axis in axes:
        subject = axis.get_title().split()[-1]
        offsets = np.asarray(axis.collections[0].get_offsets())
        assert offsets.shape == (10, 2)
        rows = data[data["Subject"].astype(str) == subject].sort_values("Days")
        np.testing.assert_allclose(offsets[:, 0], rows["Days"])
        np.testing.assert_allclose(offsets[:, 1], rows["Reaction"])
        (line,) = axis.get_lines()
        # the fitted conditional line is straight: intercept + slope per Subject
        xs, ys = line.get_data()
        assert len(xs) == 10
        b = sleep_fit.fixef
        u = sleep_fit.ranef["Subject"].loc[subject]
        np.testing.assert_allclose(ys, b["(Intercept)"] + u["(Intercept)"]
                                   + (b["Days"] + u["Days"]) * np.asarray(xs), rtol=1e-9)
        assert axis.get_xlabel() == "Days"
        assert axis.get_ylabel() == "Reaction"
    with pytest.raises(ValueError, match="not a column"):
        plots.group_panels(sleep_fit, "Hours")


def test_profile_zeta_crosses_zero_at_estimate(dyestuff_ml):
    fit = dyestuff_ml
    table = fit.profile()
    fig = plots.profile_zeta(fit, profile=table)
    render(fig)
    axes = visible_axes(fig)
    estimates = {"sd_(Intercept)|Batch": fit.varcorr["sdcor"].iloc[0], "sigma": fit.sigma,
                 "(Intercept)": fit.fixef["(Intercept)"]}
    assert sorted(a.get_xlabel() for a in axes) == sorted(estimates)
    for axis in axes:
        assert axis.get_ylabel() == "zeta"
        (trace,) = [line for line in axis.get_lines() if len(line.get_xdata()) > 2]
        value, zeta = (np.asarray(v, dtype=float) for v in trace.get_data())
        assert np.all(np.diff(zeta) > 0)  # zeta increases with the parameter
        crossing = np.interp(0.0, zeta, value)
        estimate = estimates[axis.get_xlabel()]
        assert crossing == pytest.approx(estimate, rel=1e-6)
    one = plots.profile_zeta(fit, parameters="sigma", profile=table)
    assert len(visible_axes(one)) == 1


def test_weighted_fit_plots_its_pearson_residuals():
    """With prior weights, the residual plots show r_i sqrt(w_i), as lme4's plot(): the
    residuals of the rows of weight 0.01 would otherwise dwarf the others."""
    data = mm.datasets.load("sleepstudy")
    data["w"] = np.r_[np.full(90, 0.01), np.ones(90)]
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)", data, weights="w")
    pearson = fit.resid("pearson").to_numpy()
    np.testing.assert_allclose(pearson, fit.residuals * np.sqrt(data["w"].to_numpy()))
    fig = plots.residuals_vs_fitted(fit)
    axis = visible_axes(fig)[0]
    assert axis.get_ylabel() == "Pearson residuals"
    np.testing.assert_allclose(axis.collections[0].get_offsets()[:, 1], pearson)
    fig = plots.qq_residuals(fit)
    axis = visible_axes(fig)[0]
    assert axis.get_ylabel() == "Pearson residuals"
    np.testing.assert_allclose(axis.collections[0].get_offsets()[:, 1], np.sort(pearson))


def test_row_plots_of_a_dask_fit_say_why_they_refuse():
    dd = pytest.importorskip("dask.dataframe")
    fit = mm.lmer("Reaction ~ Days + (Days | Subject)",
                  dd.from_pandas(mm.datasets.load("sleepstudy"), npartitions=2))
    for name, draw in [("residuals_vs_fitted", plots.residuals_vs_fitted),
                       ("qq_residuals", plots.qq_residuals),
                       ("group_panels", lambda f: plots.group_panels(f, "Days"))]:
        with pytest.raises(NotImplementedError, match=f"{name} draws every row.*Dask"):
            draw(fit)
    render(plots.caterpillar(fit))  # the random effects are the fit's own
