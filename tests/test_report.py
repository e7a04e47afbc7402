"""The main job's report (kerneltheory/report.py): claim matrix + variance sweeps → report.md (figures linked),
report.json and a self-contained report.html (figures embedded), resumable."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest

from kerneltheory.experiments import FigureConfig, ScaleSpec, Series
from kerneltheory.report import run_report
from kerneltheory.report_html import markdown_to_html
from kerneltheory.report_matrix import heading_id

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def small_figure() -> FigureConfig:
    return FigureConfig(
        name="small",
        title="Small sweep",
        description="two estimators, two norms",
        x="norm",
        fixed={"dim": 4, "num_features": 4, "norm": 0.5, "norm_ratio": 1.0, "angle": 60.0, "pairs": 1},
        scales={"quick": ScaleSpec((0.25, 0.5), 256, 128)},
        series=(
            Series("positive/gaussian", "positive", "iid"),
            Series("positive/orthogonal", "positive", "orthogonal", theory=("iid", "orf_bound")),
        ),
    )


def test_markdown_to_html_embeds_images_and_keeps_tables(tmp_path):
    (tmp_path / "fig").mkdir()
    (tmp_path / "fig" / "a.png").write_bytes(PNG)
    text = "\n".join(
        [
            "# Title",
            "",
            "Some `code` and **bold** <b>escaped</b>.",
            "",
            "![A figure](fig/a.png)",
            "",
            "| a | b |",
            "|---|---|",
            "| x \\| y | `z` |",
            "",
            "- one",
            "- two",
            "",
        ]
    )
    page = markdown_to_html(text, tmp_path, title="t")
    assert page.startswith("<!DOCTYPE html>") and '<h1 id="title">Title</h1>' in page
    assert "<code>code</code>" in page and "<strong>bold</strong>" in page and "&lt;b&gt;escaped" in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page
    assert "<td>x | y</td>\n<td><code>z</code></td>" in page
    assert "<ul>\n<li>one</li>\n<li>two</li>\n</ul>" in page
    with pytest.raises(ValueError, match="not found"):
        markdown_to_html("![missing](nope.png)", tmp_path)


def test_report_with_claim_matrix_and_variance_sweeps(small_report, tmp_path, capsys):
    res, first = small_report
    out = tmp_path / "rep"  # a copy: the second run below resumes from the first run's files without touching them
    shutil.copytree(first, out)
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    data = json.loads((out / "report.json").read_text(encoding="utf-8"),  # standard JSON: no NaN or Infinity
                      parse_constant=lambda c: pytest.fail(f"report.json holds {c}"))
    assert res["html"] == first / "report.html"
    # the claim matrix content is kept, in Markdown and in HTML
    assert "## Claim matrix" in md and "## Registry" in md and "## Variance sweeps" in md
    for section in ("Claim matrix", "Variance sweeps", "Registry", "Details"):
        assert f'<h2 id="{section.lower().replace(" ", "-")}">{section}</h2>' in page
    assert [e["estimator"] for e in data["matrix"]] == ["positive/gaussian"]
    assert page.count("<td>positive/gaussian</td>") >= 2  # matrix row and registry row
    # figures: linked from Markdown, embedded in HTML, regenerated on disk with their tables
    assert "![Small sweep](variance/small.png)" in md
    assert (out / "variance" / "small.png").is_file() and (out / "variance" / "small.parquet").is_file()
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)) == 1
    assert 'src="variance/small.png"' not in page
    fig = data["variance"]["figures"][0]
    assert fig["name"] == "small" and fig["computed"] == 4 and fig["png"] == "variance/small.png"
    assert {r["label"] for r in fig["summary"]} == {"positive"} and len(fig["summary"]) == 2
    assert set(data["timings"]) == {"claim matrix", "variance sweeps", "total"}
    # a second run resumes: nothing recomputed, same matrix and same measurements
    again = run_report(
        out, names=["positive/gaussian"], variance=True, variance_configs=[small_figure()], progress=False
    )
    data2 = json.loads(again["json"].read_text(encoding="utf-8"))
    assert data2["variance"]["figures"][0]["computed"] == 0
    assert data2["variance"]["figures"][0]["summary"] == fig["summary"]
    assert data2["matrix"] == data["matrix"]
    capsys.readouterr()


def test_the_variance_folder_stays_locked_until_the_report_is_written(tmp_path, monkeypatch):
    """The report held <out>/variance's lock only while its sweeps ran, so a `kerneltheory variance` run into that
    folder before the report was written replaced the figure the page embeds, beside the report's own numbers (a
    review finding). It holds it until the report is written, and releases it after."""
    import kerneltheory.report as R
    from kerneltheory.experiments.study import OutputLock

    seen = []
    write = R.write_report

    def write_report(out_dir, *args, **kw):
        with pytest.raises(ValueError, match="is in use by another run"):
            OutputLock(tmp_path / "variance").__enter__()
        seen.append(True)
        return write(out_dir, *args, **kw)

    monkeypatch.setattr(R, "write_report", write_report)
    run_report(tmp_path, matrix=False, variance=True, variance_configs=[small_figure()], progress=False)
    assert seen == [True]
    with OutputLock(tmp_path / "variance"):  # released
        pass


def test_a_filtered_report_skips_the_sweeps_by_default(tmp_path):
    run_report(tmp_path, names=["elu"], progress=False)
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["variance"] is None and not (tmp_path / "variance").exists()
    assert (tmp_path / "report.html").is_file()
    run_report(tmp_path / "reg", matrix=False, progress=False)
    assert json.loads((tmp_path / "reg" / "report.json").read_text(encoding="utf-8"))["variance"] is None


def test_html_page_links_colours_and_labels(cli_report):
    """Every in-page link (table of contents, matrix cells) lands on an element id; every proof link names a file
    that exists; verdict cells are coloured; p-values are labelled adjusted with the raw one beside; the
    estimators are grouped by family; there is a print stylesheet."""
    status, out = cli_report  # run_report of the three estimators, written by the command (conftest.cli_report)
    assert status == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    ids = set(re.findall(r' id="([^"]+)"', page))
    anchors = re.findall(r'href="#([^"]+)"', page)
    assert anchors and set(anchors) <= ids, sorted(set(anchors) - ids)
    toc = page.split('<nav class="toc"', 1)[1].split("</nav>", 1)[0]
    assert {"claim-matrix", "details", "registry", "family-positive", "family-trig"} <= set(
        re.findall(r'href="#([^"]+)"', toc)
    )
    for claim in ("unbiased", "positive", "variance", "finite"):
        assert f'href="#elu-{claim}"' in page and f'id="elu-{claim}"' in page
    proofs = re.findall(r'href="([^"#]+\.md)"', page)
    assert proofs and all((out / href).resolve().is_file() for href in proofs)
    assert '<td class="v-verified"><a href="#positivegaussian-unbiased">verified</a> · adj. p ' in page
    assert '<td class="v-n-a"><a href="#elu-unbiased">n/a</a>' in page  # elu + 1's target is its own Gram
    assert '<td class="v-refuted"><a href="#trigsorf-positive">refuted</a>' in page
    # report.md's links use the ids GitHub gives its headings, so they land on GitHub too
    md = (out / "report.md").read_text(encoding="utf-8")
    md_ids = {heading_id(h) for h in re.findall(r"^#+ (.+)$", md, flags=re.M)}
    md_links = set(re.findall(r"\]\(#([^)]+)\)", md))
    assert {"trigsorf-positive", "positivegaussian-unbiased"} <= md_links <= md_ids, sorted(md_links - md_ids)
    assert "(raw " in page and "Bonferroni-adjusted" in page
    assert page.index('id="family-positive"') < page.index('id="family-trig"') < page.index(
        'id="family-deterministic-maps"'
    )
    assert "@media print" in page


def test_adjusted_p_is_bonferroni_over_the_report():
    from kerneltheory.report_matrix import adjusted_p

    assert adjusted_p(1e-8, 1e-7, 1e-6) == pytest.approx(1e-7)  # 10 checks: p × 10
    assert adjusted_p(0.5, 1e-7, 1e-6) == 1.0  # clipped: a probability bound
    assert adjusted_p(float("nan"), 1e-7, 1e-6) != adjusted_p(float("nan"), 1e-7, 1e-6)  # refused: no p


def test_heading_ids_follow_github():
    """GitHub's heading ids: lower case, punctuation other than "-" and "_" dropped, each space a "-"."""
    assert heading_id("positive/gaussian: unbiased") == "positivegaussian-unbiased"
    assert heading_id("trig_phase/gaussian: finite") == "trig_phasegaussian-finite"
    assert heading_id("Family: positive (SM)") == "family-positive-sm"
    assert heading_id("Claim matrix") == "claim-matrix"


def test_markdown_tables_round_floats_and_escape_pipes():
    """report.md's tables show a statistic to 4 significant digits (the JSON records keep every digit); a cell's
    '|' is escaped so that it cannot split the row."""
    from kerneltheory.report import markdown_table

    table = markdown_table([{"statistic": -1.0278797544881972, "p_value": 1.0, "detail": "a|b", "n": 3}],
                           ("statistic", "p_value", "detail", "n"))
    assert table.splitlines()[-1] == "| -1.028 | 1 | a\\|b | 3 |"


def test_report_json_is_standard_json(tmp_path):
    """Review finding: report.json carried NaN and Infinity tokens, which strict parsers reject; written with
    strict=True every non-finite number is null, while the files the package reads back keep them."""
    import math

    from kerneltheory.io import write_json_atomic

    obj = {"p": math.nan, "effect": [math.inf, 1.5, {"z": -math.inf}], "n": 3, "name": "x"}
    path = write_json_atomic(tmp_path / "r.json", obj, strict=True)
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == {
        "p": None, "effect": [None, 1.5, {"z": None}], "n": 3, "name": "x"}
    loose = write_json_atomic(tmp_path / "c.json", obj).read_text(encoding="utf-8")
    assert "NaN" in loose and "Infinity" in loose


def _attention_rows(alpha: float = 1e-6):
    from kerneltheory.testing.checks import CheckResult

    return [
        CheckResult(name="ratio[positive/gaussian]", claim="ratio", statistic=1.25, p_value=0.5, alpha=alpha,
                    effect_size=0.01, sample_size=4000, seed=7, method="clt", passed=True, detail="ok"),
        CheckResult.refusal("the bound is vacuous (≥ 1)", name="rks_uniform[0.1]", claim="uniform", alpha=alpha,
                            sample_size=128, seed=8),
        CheckResult.certain_failure("bound", "an estimate outside its bound", name="chebyshev[0.2]", claim="uniform",
                                    alpha=alpha, sample_size=128, seed=9),
        CheckResult(name="chebyshev[0.3]", claim="uniform", statistic=3.0, p_value=1e-9, alpha=alpha,
                    effect_size=0.2, sample_size=128, seed=10, method="binomial", passed=False, detail="too many"),
    ]


def _same_rows(a, b) -> bool:
    return json.dumps([r.as_dict() for r in a], sort_keys=True) == json.dumps([r.as_dict() for r in b], sort_keys=True)


def test_attention_rows_are_cached_under_the_matrix_key(tmp_path, monkeypatch):
    """The attention theory's rows are written to attention_theory.<settings>.json and read back by a second run with
    the same budget, seed, level, version and source; any of these changed recomputes them. A run with other
    settings writes its own file: the earlier settings' rows are read back afterwards without recomputing (they
    were overwritten, a review finding)."""
    import kerneltheory.report as R
    import kerneltheory.testing.attention_theory as AT
    from kerneltheory.testing.checks import CheckResult

    assert R.ATTENTION_ROW_FIELDS.keys() == _attention_rows()[0].as_dict().keys()  # the record of a CheckResult
    calls = []

    def rows(quick, base_seed, alpha):
        calls.append((quick, base_seed, alpha))
        return _attention_rows(alpha)

    monkeypatch.setattr(AT, "attention_theory_rows", rows)
    first = R.attention_section(tmp_path, seed=3, alpha=1e-6)
    assert calls == [(True, 3, 1e-6)] and (tmp_path / "attention_theory.quick.seed-3.alpha-1e-06.json").is_file()
    again = R.attention_section(tmp_path, seed=3, alpha=1e-6)
    assert len(calls) == 1 and _same_rows(first, again) and all(isinstance(r, CheckResult) for r in again)
    assert again[1].refused and again[1].p_value != again[1].p_value and again[2].statistic == float("inf")
    R.attention_section(tmp_path, seed=4, alpha=1e-6)
    R.attention_section(tmp_path, seed=4, alpha=1e-5)
    R.attention_section(tmp_path, budget="thorough", seed=4, alpha=1e-5)
    assert calls[1:] == [(True, 4, 1e-6), (True, 4, 1e-5), (False, 4, 1e-5)]
    R.attention_section(tmp_path, seed=3, alpha=1e-6)  # the first settings' rows are still there
    assert len(calls) == 4
    monkeypatch.setattr(R, "source_digest", lambda: "another source")
    R.attention_section(tmp_path, budget="thorough", seed=4, alpha=1e-5)
    monkeypatch.setattr(R, "__version__", "another version")
    R.attention_section(tmp_path, budget="thorough", seed=4, alpha=1e-5)
    R.attention_section(tmp_path, budget="thorough", seed=4, alpha=1e-5)
    assert len(calls) == 6


def test_the_checks_rows_survive_the_cache(tmp_path, monkeypatch, kt_seed):
    """Rows the uniform-convergence check returns (a refusal, a pass) go through the file unchanged."""
    import kerneltheory.report as R
    import kerneltheory.testing.attention_theory as AT

    real = AT.finite_set_uniform_check(draws=64, seed=kt_seed, epsilons=(0.1, 0.2))
    assert real[0].refused and real[1].passed
    monkeypatch.setattr(AT, "attention_theory_rows", lambda **kw: real)
    R.attention_section(tmp_path)
    monkeypatch.setattr(AT, "attention_theory_rows", lambda **kw: pytest.fail("recomputed"))
    assert _same_rows(R.attention_section(tmp_path), real)


def test_the_report_reads_its_attention_rows_back(tmp_path, monkeypatch):
    """run_report goes through the cache: a second report into the same directory does not recompute the rows."""
    import kerneltheory.report as R
    import kerneltheory.testing.attention_theory as AT

    calls = []
    monkeypatch.setattr(AT, "attention_theory_rows", lambda **kw: calls.append(kw) or _attention_rows())
    monkeypatch.setattr(R, "claim_matrix", lambda *a, **kw: [])  # the matrix is tested elsewhere
    for _ in range(2):
        res = run_report(tmp_path, variance=False, progress=False)
        data = json.loads(res["json"].read_text(encoding="utf-8"))
        assert [r["name"] for r in data["attention_theory"]] == [r.name for r in _attention_rows()]
    assert len(calls) == 1 and "## Attention error theory" in res["text"]


_TAMPERED = {
    "not JSON": lambda e: "{not json",
    "null": lambda e: None,
    "a list": lambda e: [e],
    "no rows field": lambda e: {k: v for k, v in e.items() if k != "rows"},
    "no rows": lambda e: dict(e, rows=[]),
    "negative seconds": lambda e: dict(e, seconds=-1.0),
    "infinite seconds": lambda e: dict(e, seconds=float("inf")),
    "p above 1": lambda e: dict(e, rows=[dict(e["rows"][0], p_value=2.0)]),
    "p below 0": lambda e: dict(e, rows=[dict(e["rows"][0], p_value=-0.5)]),
    "level 0": lambda e: dict(e, rows=[dict(e["rows"][0], alpha=0.0)]),
    "level NaN": lambda e: dict(e, rows=[dict(e["rows"][0], alpha=float("nan"))]),
    "another level": lambda e: dict(e, rows=[dict(e["rows"][0], alpha=0.5)]),
    "negative sample size": lambda e: dict(e, rows=[dict(e["rows"][0], sample_size=-1)]),
    "float sample size": lambda e: dict(e, rows=[dict(e["rows"][0], sample_size=4000.0)]),
    "bool sample size": lambda e: dict(e, rows=[dict(e["rows"][0], sample_size=True)]),
    "bool statistic": lambda e: dict(e, rows=[dict(e["rows"][0], statistic=True)]),
    "int passed": lambda e: dict(e, rows=[dict(e["rows"][0], passed=1)]),
    "no name": lambda e: dict(e, rows=[dict(e["rows"][0], name=None)]),
    "an extra field": lambda e: dict(e, rows=[dict(e["rows"][0], extra=1)]),
    "a missing field": lambda e: dict(e, rows=[{k: v for k, v in e["rows"][0].items() if k != "detail"}]),
    "a refusal that passed": lambda e: dict(e, rows=[dict(e["rows"][1], passed=True)]),
    "a refusal with a p-value": lambda e: dict(e, rows=[dict(e["rows"][1], p_value=0.5)]),
    "a failure that passed": lambda e: dict(e, rows=[*e["rows"][:3], dict(e["rows"][3], passed=True)]),
    "a failure relabelled refused": lambda e: dict(e, rows=[*e["rows"][:3], dict(e["rows"][3], method="refused")]),
    "a pass without a p-value": lambda e: dict(e, rows=[dict(e["rows"][0], p_value=float("nan"))]),
    "a pass below the level": lambda e: dict(e, rows=[dict(e["rows"][0], p_value=1e-9)]),
    "a stopped row": lambda e: dict(e, rows=[dict(e["rows"][0], method="stopped", passed=False)]),
    "a row twice": lambda e: dict(e, rows=[*e["rows"], e["rows"][0]]),
    "not a row": lambda e: dict(e, rows=["a row"]),
}


@pytest.mark.parametrize("tamper", list(_TAMPERED.values()), ids=list(_TAMPERED))
def test_a_corrupt_attention_cache_is_recomputed_with_a_warning(tmp_path, monkeypatch, tamper):
    import kerneltheory.report as R
    import kerneltheory.testing.attention_theory as AT
    from kerneltheory.experiments.study import CacheWarning

    calls = []
    monkeypatch.setattr(AT, "attention_theory_rows", lambda **kw: calls.append(kw) or _attention_rows())
    R.attention_section(tmp_path)
    path = tmp_path / "attention_theory.quick.seed-0.alpha-1e-06.json"
    from kerneltheory.experiments.study import read_checked_json, write_checked_json

    bad = tamper(read_checked_json(path))  # a consistent, checksummed entry that the validation must refuse
    if isinstance(bad, dict):
        write_checked_json(path, bad)
    else:
        path.write_text(bad if isinstance(bad, str) else json.dumps(bad), encoding="utf-8")
    with pytest.warns(CacheWarning, match=r"attention_theory\.quick\.seed-0\.alpha-1e-06\.json"):
        rows = R.attention_section(tmp_path)
    assert len(calls) == 2 and _same_rows(rows, _attention_rows())
    assert R._attention_problem(read_checked_json(path), 1e-6) is None  # rewritten
