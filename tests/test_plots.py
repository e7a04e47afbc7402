"""The variance figures (kerneltheory/experiments/plots.py): laid out without measuring text, they must still
show every title, label, tick label and legend entry inside the figure with no two overlapping; the Unicode
log-axis labels say what matplotlib's mathtext ones say, and the minor ticks dropped are the unlabelled ones."""

import dataclasses
import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation, LogLocator  # noqa: E402

from kerneltheory.experiments import plots  # noqa: E402
from kerneltheory.experiments.defaults import default_configs  # noqa: E402

COMMITTED = Path(__file__).resolve().parents[1] / "experiments" / "variance"
CONFIGS = {c.name: c for c in default_configs()}


def _text_boxes(fig) -> list[tuple[str, object]]:
    """(name, window extent) of every text the rendered ``fig`` shows: titles, axis labels, the tick labels
    of the ticks in view, legend entries."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [(f"figure text {t.get_text()!r}", t) for t in fig.texts]
    texts += [(f"legend entry {t.get_text()!r}", t) for leg in fig.legends for t in leg.get_texts()]
    for n, ax in enumerate(fig.axes):
        texts += [(f"panel {n} {what}", t) for what, t in
                  (("title", ax.title), ("x label", ax.xaxis.label), ("y label", ax.yaxis.label))]
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if lo * (1 - 1e-9) <= tick.get_loc() <= hi * (1 + 1e-9):
                    texts.append((f"panel {n} tick label {tick.label1.get_text()!r}", tick.label1))
    return [(name, t.get_window_extent(renderer)) for name, t in texts if t.get_visible() and t.get_text()]


def layout_defects(fig) -> list[str]:
    """Texts that leave the figure, overlap another text, or enter a panel's plotting area."""
    boxes = _text_boxes(fig)
    frame = fig.bbox
    bad = [f"{name} leaves the figure" for name, b in boxes
           if b.x0 < frame.x0 or b.y0 < frame.y0 or b.x1 > frame.x1 or b.y1 > frame.y1]
    bad += [f"{a} overlaps {b}" for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]
    bad += [f"{name} enters panel {n}" for name, b in boxes for n, ax in enumerate(fig.axes)
            if b.overlaps(ax.bbox) and not name.startswith(f"panel {n} tick")]
    return bad


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_shipped_figure_shows_all_its_texts_unclipped_and_apart(name):
    frame = pd.read_parquet(COMMITTED / f"{name}.parquet")
    config = CONFIGS[name]
    with plots.drawn_figure(frame, config) as fig:
        assert layout_defects(fig) == []
        panels = list(dict.fromkeys(s.panel for s in config.series))
        assert [ax.get_title() for ax in fig.axes] == [p or config.title for p in panels]
        assert all(ax.get_yscale() == "log" for ax in fig.axes)
        assert [t.get_text() for t in fig.legends[0].get_texts()][:len(set(s.label for s in config.series))] == \
            list(dict.fromkeys(s.label for s in config.series))


def test_the_layout_check_finds_clipped_and_overlapping_texts():
    fig = plt.figure(figsize=(3, 2))
    try:
        fig.text(0.1, 0.5, "one label")
        fig.text(0.12, 0.5, "another label")
        fig.text(0.9, 0.9, "a text running off the right edge")
        defects = layout_defects(fig)
    finally:
        plt.close(fig)
    assert any("overlaps" in d for d in defects) and any("leaves the figure" in d for d in defects)


@pytest.mark.parametrize("panels", [1, 4, 5])
def test_partial_grids_and_a_long_title_are_laid_out_too(panels):
    config = CONFIGS["variance_vs_m"]
    names = list(dict.fromkeys(s.panel for s in config.series))[:panels]
    config = dataclasses.replace(config, series=tuple(s for s in config.series if s.panel in names),
                                 title=config.title + " and then a much longer title than any grid of one panel")
    frame = pd.read_parquet(COMMITTED / "variance_vs_m.parquet")
    with plots.drawn_figure(frame[frame["panel"].isin(names)], config) as fig:
        assert layout_defects(fig) == []
        bottom = {round(ax.get_position().x0, 3): ax for ax in fig.axes}  # the last panel of each column
        assert all(any(t.get_text() for t in ax.get_xticklabels()) for ax in bottom.values())


def test_unicode_log_labels_say_what_the_mathtext_ones_say():
    fig, ax = plt.subplots()
    try:
        ax.set_yscale("log")
        ax.set_ylim(0.03, 0.7)  # within two decades: the minor ticks are labelled too
        fmt = plots.UnicodeLogFormatter(base=10, labelOnlyBase=False)
        fmt.set_axis(ax.yaxis)
        fmt.set_locs([])
        assert [fmt(v) for v in (0.01, 0.1, 1.0, 0.6, 0.04, 100.0)] == \
            ["10⁻²", "10⁻¹", "10⁰", "6×10⁻¹", "4×10⁻²", "10²"]
        two = plots.UnicodeLogFormatter(base=2)
        two.set_axis(ax.xaxis)
        assert [two(v) for v in (4.0, 64.0, 0.25)] == ["2²", "2⁶", "2⁻²"]
    finally:
        plt.close(fig)


@pytest.mark.parametrize("limits", [(0.03, 0.7), (0.2, 0.9), (1e-3, 0.5), (1e-6, 10.0)])
def test_the_minor_ticks_kept_are_exactly_matplotlibs_labelled_ones(limits):
    fig, (ours, theirs) = plt.subplots(1, 2)
    try:
        plots._set_log(ours, "y", 10)
        theirs.set_yscale("log")
        for ax in (ours, theirs):
            ax.set_ylim(*limits)
        ref = LogFormatterSciNotation(base=10, labelOnlyBase=False)
        theirs.yaxis.set_minor_formatter(ref)
        locs = LogLocator(base=10, subs="auto")
        locs.set_axis(theirs.yaxis)
        all_locs = locs()
        ref.set_locs(all_locs)
        labelled = [x for x in all_locs if ref(x)]
        kept = ours.yaxis.get_minor_locator()()
        np.testing.assert_array_equal(kept, labelled)
        assert len(all_locs) > len(kept) or limits[1] / limits[0] < 10  # something is dropped over decades
    finally:
        plt.close(fig)


def test_the_legend_columns_fit_the_estimated_width():
    labels = ["a much longer legend entry than the others", "b", "c", "d", "e", "f"]
    assert plots._legend_columns(labels, 100.0) == 5
    assert plots._legend_columns(labels, 0.5) == 1
    wide = plots.figure_layout(2, labels)
    narrow = plots.figure_layout(1, labels)
    assert narrow.legend_cols <= wide.legend_cols and narrow.legend_rows >= wide.legend_rows
    assert narrow.legend_rows == -(-len(labels) // narrow.legend_cols)
