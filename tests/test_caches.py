"""Resuming from disk never trusts a bad file: every kind of corruption of the variance cells, the training
cells and the report's verdict cache is detected, warned about and recomputed, never used and never a crash
(kerneltheory/experiments/study.py, kerneltheory/experiments/cells.py, kerneltheory/nn/experiment.py,
kerneltheory/report.py)."""

import json
import os

import pandas as pd
import pytest
import torch

from kerneltheory.experiments import (
    CellStore,
    FigureConfig,
    ScaleSpec,
    Series,
    evaluate_cell,
    plan,
    run_figure,
)
from kerneltheory.experiments.study import CacheWarning, digest


def small() -> FigureConfig:
    return FigureConfig(
        name="small",
        title="small",
        x="norm",
        seed=3,
        fixed={"dim": 4, "num_features": 4, "norm": 0.5, "norm_ratio": 1.0, "angle": 60.0, "pairs": 2},
        scales={"quick": ScaleSpec((0.5,), 512, 64)},
        series=(Series("trig/gaussian", "trig", "a"),),
    )


def _forge(path, change) -> None:
    """Apply ``change`` to the cell file's payload and write it back with a valid checksum (a forgery the
    checksum cannot catch: the moments' own checks must)."""
    data = json.loads(path.read_text())
    data.pop("checksum")
    change(data)
    path.write_text(json.dumps({**data, "checksum": digest(data)}))


def _node(data, i=0):
    return data["moments"]["nodes"][i]["moments"]


CORRUPTIONS = {
    "random bytes": lambda p: p.write_bytes(os.urandom(300)),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-40]),
    "not an object": lambda p: p.write_text("[1, 2, 3]"),
    "edited without the checksum": lambda p: p.write_text(p.read_text().replace('"count": 512', '"count": 510', 1)),
    "no moments": lambda p: _forge(p, lambda d: d.pop("moments")),
    "wrong shape": lambda p: _forge(p, lambda d: _node(d).update(mean=[0.1])),
    "negative second moment": lambda p: _forge(p, lambda d: _node(d)["m2"].__setitem__(0, -1.0)),
    "fourth below squared second": lambda p: _forge(p, lambda d: _node(d)["m4"].__setitem__(0, 0.0)),
    "count zero": lambda p: _forge(p, lambda d: _node(d).update(count=0)),
    "negative count": lambda p: _forge(p, lambda d: _node(d).update(count=-64)),
    "NaN": lambda p: _forge(p, lambda d: _node(d)["mean"].__setitem__(1, float("nan"))),
    "infinite": lambda p: _forge(p, lambda d: _node(d)["m3"].__setitem__(1, float("inf"))),
    "blocks beyond the cell": lambda p: _forge(p, lambda d: d["moments"].update(blocks=[0, 9])),
    "missing tree node": lambda p: _forge(p, lambda d: d["moments"]["nodes"].pop()),
    "another sweep's seed": lambda p: _forge(p, lambda d: d["moments"].update(seed=d["moments"]["seed"] + 1)),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_variance_cell_is_recomputed_with_a_warning(kind, tmp_path):
    c = small()
    fresh = run_figure(c, out_dir=tmp_path / "fresh", progress=False, plot=False)
    out = tmp_path / "run"
    run_figure(c, out_dir=out, progress=False, plot=False)
    path = next((out / "cells").glob("*.json"))
    CORRUPTIONS[kind](path)
    with pytest.warns(CacheWarning, match="recomputing"):
        again = run_figure(c, out_dir=out, progress=False, plot=False)
    assert again.computed == 1 and again.cached == 0
    pd.testing.assert_frame_equal(again.frame, fresh.frame, check_exact=True)
    assert CellStore(out / "cells").load(plan(c)[0][2]) is not None  # rewritten, good again


@pytest.mark.parametrize(
    "forge",
    [
        lambda d: d["moments"].update(blocks=[0, 6]),  # claims more blocks than its draws
        lambda d: d["moments"].update(blocks=[2, 4]),  # a checkpoint must start at block 0
        lambda d: _node(d).update(count=_node(d)["count"] + 1),
    ],
    ids=["more blocks than draws", "not from block 0", "count off by one"],
)
def test_a_forged_partial_checkpoint_is_not_resumed(forge, tmp_path):
    spec = plan(small())[0][2]
    store = CellStore(tmp_path)
    store.save_partial(spec, evaluate_cell(spec, range(0, 4)))
    assert store.load_partial(spec).blocks == range(0, 4)
    _forge(tmp_path / f"{next(tmp_path.glob('*.partial.json')).name}", forge)
    with pytest.warns(CacheWarning):
        assert store.load_partial(spec) is None


def test_a_corrupt_shard_is_not_merged(tmp_path):
    spec = plan(small())[0][2]
    store = CellStore(tmp_path)
    store.save_shard(spec, evaluate_cell(spec, range(2, 4)))
    assert store.load_shard(spec, 2, 4) is not None
    path = next(tmp_path.glob("*.shard-2-4.json"))
    _forge(path, lambda d: _node(d)["m2"].__setitem__(0, -0.5))
    with pytest.warns(CacheWarning, match="m2 or m4 below 0"):
        assert store.load_shard(spec, 2, 4) is None


# -- the training cells -------------------------------------------------------------------------------------


def test_corrupt_training_cells_and_data_are_recomputed(tmp_path, capsys):
    from kerneltheory.commands import train

    out = tmp_path / "kl"
    argv = ["--scale", "smoke", "--out", str(out), "--kernels", "softmax", "--tasks", "retrieval",
            "--workers", "1", "--quiet", "--no-figures"]
    assert train.main(argv) == 0
    first = pd.read_parquet(out / "results.parquet")
    cells = out / "cells"
    summary = next(p for p in cells.glob("train__*.parquet") if ".trace" not in p.name)
    summary.write_bytes(os.urandom(200))
    data = next((cells / "data").glob("*train*.pt"))
    torch.save({"tokens": torch.zeros(3, 3)}, data)  # a readable file of the wrong shape
    cost = next(cells.glob("cost__*.parquet"))
    cost.write_bytes(cost.read_bytes()[:50])
    with pytest.warns(CacheWarning) as record:
        assert train.main(argv) == 0
    messages = " ".join(str(w.message) for w in record)
    assert summary.name in messages and data.name in messages and cost.name in messages
    again = pd.read_parquet(out / "results.parquet")
    timing = ["time_per_step_ms", "peak_memory_mb", "wall_s"]
    pd.testing.assert_frame_equal(again.drop(columns=timing), first.drop(columns=timing), check_exact=True)
    (out / "config.json").write_text("{ not json")
    with pytest.warns(CacheWarning, match="config.json"):
        assert train.main(argv) == 0
    capsys.readouterr()


# -- the report's verdict cache -----------------------------------------------------------------------------


def _check(claim, passed=True):
    from kerneltheory.testing.checks import CheckResult

    return CheckResult(name=claim, claim=claim, statistic=0.7, p_value=0.5 if passed else 1e-9, alpha=1e-6,
                       effect_size=0.1, sample_size=256, seed=0, method="z", passed=passed).as_dict()


def _entry(name="elu"):
    verdicts = [{"estimator": name, "claim": claim, "claimed": "exact", "verdict": "not refuted", "p_value": 0.5,
                 "effect_size": 0.1, "method": "z", "evidence": "", "proof": "p.md", "checks": [_check(claim)]}
                for claim in ("unbiased", "positive", "variance", "finite")]
    return {"key": {"k": 1}, "estimator": name, "passed": True, "seconds": 1.5, "verdicts": verdicts}


def _verdict(e, i=0, **changes):
    return [*e["verdicts"][:i], {**e["verdicts"][i], **changes}, *e["verdicts"][i + 1:]]


# written raw (its checksum then fails), or as a consistent checksummed entry that the validation must refuse
VERDICT_CORRUPTIONS = {
    "random bytes": lambda e: os.urandom(100),
    "truncated": lambda e: json.dumps(e)[:60],
    "a list": lambda e: "[]",
    "no checksum": lambda e: json.dumps(e),
    "edited after its checksum": lambda e: json.dumps({**e, "checksum": digest(e), "verdicts": _verdict(e, 0,
                                                                                                        verdict="FAILED")}),
    "no verdicts": lambda e: {**e, "verdicts": []},
    "NaN seconds": lambda e: {**e, "seconds": float("nan")},
    "negative seconds": lambda e: {**e, "seconds": -1},
    "passed not a bool": lambda e: {**e, "passed": "yes"},
    "another estimator": lambda e: {**e, "estimator": "trig/gaussian"},
    "p-value above 1": lambda e: {**e, "verdicts": _verdict(e, 0, p_value=2)},
    "verdict missing a field": lambda e: {**e, "verdicts": [{k: v for k, v in e["verdicts"][0].items() if k != "claim"},
                                                            *e["verdicts"][1:]]},
    "a verdict that is none of the report's": lambda e: {**e, "verdicts": _verdict(e, 1, verdict="bogus")},
    "a claim missing": lambda e: {**e, "verdicts": e["verdicts"][1:]},
    "a claim twice": lambda e: {**e, "verdicts": _verdict(e, 1, claim="unbiased")},
    # a verdict its own checks do not give, its checksum recomputed (a review's forgery: FAILED beside a passed row)
    "FAILED beside passed checks": lambda e: {**e, "verdicts": _verdict(e, 1, verdict="FAILED")},
    "verified beside a failed check": lambda e: {**e, "verdicts": _verdict(e, 1, verdict="verified",
                                                                            checks=[_check("positive", False)])},
    "n/a beside checks": lambda e: {**e, "verdicts": _verdict(e, 2, verdict="n/a", checks=[_check("variance"),
                                                                                        _check("variance", False)])},
    "verified without a check": lambda e: {**e, "verdicts": _verdict(e, 3, verdict="verified", checks=[])},
    "a check that is no check's record": lambda e: {**e, "verdicts": _verdict(e, 0, checks=[{"p": 1}])},
}


@pytest.mark.parametrize("kind", list(VERDICT_CORRUPTIONS))
def test_a_corrupt_verdict_cache_is_recomputed_with_a_warning(kind, tmp_path):
    """Review finding: the matrix entries carried no checksum and their verdicts were not checked against the
    report's, so an entry edited to say "bogus" (a claim then counted nowhere) was read back and the report passed."""
    from kerneltheory.experiments.study import write_checked_json
    from kerneltheory.report import _load_verdicts

    entry, path = _entry(), tmp_path / "elu.json"
    write_checked_json(path, entry)
    assert _load_verdicts(path, entry["key"], "elu") == entry
    assert _load_verdicts(path, {"k": 2}, "elu") is None  # another key: recomputed, not an error
    bad = VERDICT_CORRUPTIONS[kind](entry)
    if isinstance(bad, dict):
        write_checked_json(path, bad)
    else:
        path.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    with pytest.warns(CacheWarning, match="recomputing"):
        assert _load_verdicts(path, entry["key"], "elu") is None


def test_the_claim_matrix_recomputes_a_corrupt_cache_entry(tmp_path):
    from kerneltheory.report import _cache_path, claim_matrix

    first = claim_matrix(tmp_path, names=["elu"], progress=False)
    path = _cache_path(tmp_path, "elu")
    path.write_bytes(os.urandom(64))
    with pytest.warns(CacheWarning):
        again = claim_matrix(tmp_path, names=["elu"], progress=False)
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in again] == [
        {k: v for k, v in e.items() if k != "seconds"} for e in first
    ]


def test_a_run_with_other_settings_keeps_the_earlier_entries(tmp_path):
    """A run with another seed (budget, level) into the same folder overwrote each estimator's entry, so going back
    to the first settings recomputed it (a review finding: a thorough run's results lost to a later quick run). The
    settings are in the file's name now; both entries stay and each is reused."""
    from kerneltheory.report import _cache_path, claim_matrix

    first = claim_matrix(tmp_path, names=["elu"], progress=False)
    other = claim_matrix(tmp_path, names=["elu"], seed=1, progress=False)
    assert other[0]["key"]["seed"] == 1 and _cache_path(tmp_path, "elu", seed=1) != _cache_path(tmp_path, "elu")
    stamps = [_cache_path(tmp_path, "elu", seed=s).stat().st_mtime_ns for s in (0, 1)]
    assert claim_matrix(tmp_path, names=["elu"], progress=False) == first
    assert claim_matrix(tmp_path, names=["elu"], seed=1, progress=False) == other
    assert [_cache_path(tmp_path, "elu", seed=s).stat().st_mtime_ns for s in (0, 1)] == stamps  # read, not rewritten


def test_a_verdict_cached_by_other_code_is_recomputed(tmp_path, monkeypatch):
    """The matrix cache key holds a digest of the package's source: a verdict computed by another revision of the
    code (same version number) is recomputed, not reused."""
    import kerneltheory.report as report

    claim_matrix = report.claim_matrix
    first = claim_matrix(tmp_path, names=["elu"], progress=False)
    assert first[0]["key"]["source"] == report.source_digest()
    stamp = report._cache_path(tmp_path, "elu").stat().st_mtime_ns
    assert claim_matrix(tmp_path, names=["elu"], progress=False)[0] == first[0]  # same code: reused
    assert report._cache_path(tmp_path, "elu").stat().st_mtime_ns == stamp
    monkeypatch.setattr(report, "source_digest", lambda: "another revision")
    again = claim_matrix(tmp_path, names=["elu"], progress=False)
    assert again[0]["key"]["source"] == "another revision"
    assert [v["verdict"] for v in again[0]["verdicts"]] == [v["verdict"] for v in first[0]["verdicts"]]


def test_a_cache_file_nested_too_deep_to_parse_is_recomputed(tmp_path):
    """JSON nested 200 000 deep made the report exit with a RecursionError naming no file, on every rerun (a review
    finding); it is an unreadable cache file like any other: warned about and recomputed."""
    from kerneltheory.experiments.study import read_checked_json

    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000, encoding="utf-8")
    with pytest.warns(CacheWarning, match=r"deep\.json: unreadable \(RecursionError\)"):
        assert read_checked_json(path) is None
