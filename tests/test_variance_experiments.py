"""The variance sweeps (kerneltheory/experiments, kerneltheory variance): configurations, pure and
deterministic cells, bitwise split/resume, a 2-worker Dask cluster identical to the local run, the command."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kerneltheory.commands.variance import main
from kerneltheory.estimators import RandomFeatureEstimator
from kerneltheory.experiments import (
    CellStore,
    FigureConfig,
    ScaleSpec,
    Series,
    cell_digest,
    cell_spec,
    default_configs,
    evaluate_cell,
    load_config,
    load_configs,
    make_inputs,
    plan,
    run_figure,
    to_toml,
)
from kerneltheory.experiments.cells import moment_columns
from kerneltheory.experiments.study import CacheWarning
from kerneltheory.montecarlo import BlockMoments, moments

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("mean", "m2", "m3", "m4")
ALPHA = 1e-6


def tiny(seed: int = 0, draws: int = 512, block: int = 128) -> FigureConfig:
    """A small figure exercising an iid closed form, an orthogonal law with the ORF bound, and a data-dependent
    map on a 2-pair sequence."""
    return FigureConfig(
        name="tiny",
        title="tiny",
        x="norm",
        seed=seed,
        fixed={"dim": 4, "num_features": 4, "norm": 0.5, "norm_ratio": 1.0, "angle": 60.0, "pairs": 2},
        scales={"quick": ScaleSpec((0.25, 0.5), draws, block)},
        series=(
            Series("trig/gaussian", "trig", "a"),
            Series("positive/orthogonal", "orth", "a", theory=("iid", "orf_bound")),
            Series("oprf/gaussian", "oprf", "b", overrides={"norm_ratio": 0.5}),
        ),
    )


def assert_bitwise(a: BlockMoments, b: BlockMoments) -> None:
    assert a.count == b.count
    for f in FIELDS:
        assert torch.equal(getattr(a, f), getattr(b, f)), f


# -- configurations -------------------------------------------------------------------------------------


def test_shipped_configs_round_trip_through_toml_and_match_the_committed_files():
    configs = default_configs()
    assert [c.name for c in configs] == [
        "variance_vs_m",
        "variance_vs_norm",
        "variance_vs_angle",
        "variance_vs_dim",
        "oprf_saderf",
        "learned_spectra",
    ]
    for c in configs:
        assert FigureConfig.from_dict(tomllib.loads(to_toml(c))) == c
    committed = load_configs(sorted((ROOT / "experiments" / "configs").glob("[0-9][0-9]_*.toml")))
    assert [c.to_dict() for c in committed] == [c.to_dict() for c in configs], (
        "experiments/configs is out of date: run `kerneltheory variance --write-configs experiments/configs`"
    )


def test_json_configs_load_too(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny().to_dict()), encoding="utf-8")
    assert load_config(path) == tiny()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(x="speed"), "x must be one of"),
        (lambda d: d["fixed"].update(angle=200.0), "angle must be in"),
        (lambda d: d["fixed"].update(colour=1), "unknown key"),
        (lambda d: d["series"][0].update(overrides={"norm": 1.0}), "overrides the axis"),
        (lambda d: d["series"][0].update(theory=["exact"]), "unknown theory"),
        (lambda d: d["scales"]["quick"].update(draws=1), "draws must be an integer >= 2"),
        (lambda d: d["series"].append(dict(d["series"][0])), "must be unique"),
    ],
)
def test_bad_configs_are_refused_with_the_reason(change, message):
    d = tiny().to_dict()
    change(d)
    with pytest.raises(ValueError, match=message):
        FigureConfig.from_dict(d)


def test_a_closed_form_that_does_not_apply_is_refused(tmp_path):
    bad = dataclasses.replace(
        tiny(), series=(Series("hyperbolic/orthogonal", "orth", theory=("closed_form",)),)
    )
    with pytest.raises(ValueError, match="no closed-form variance"):
        run_figure(bad, out_dir=tmp_path, progress=False, plot=False)
    bad = dataclasses.replace(tiny(), series=(Series("trig/orthogonal", "orth", theory=("orf_bound",)),))
    with pytest.raises(ValueError, match="orf_bound"):
        run_figure(bad, out_dir=tmp_path, progress=False, plot=False)


# -- cells ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        {"dim": 5, "pairs": 3, "norm": 0.7, "norm_ratio": 0.5, "angle": 37.0},
        {"dim": 2, "pairs": 2, "norm": 2.0, "norm_ratio": 1.0, "angle": 180.0},
        {"dim": 1, "pairs": 2, "norm": 1.0, "norm_ratio": 2.0, "angle": 0.0},
        {"dim": 3, "pairs": 1, "norm": 0.0, "norm_ratio": 1.0, "angle": 90.0},
    ],
)
def test_inputs_have_the_asked_norms_and_angle_and_are_deterministic(point):
    x, y = make_inputs(point, 7)
    assert x.shape == y.shape == (point["pairs"], point["dim"])
    nx, ny = x.norm(dim=-1), y.norm(dim=-1)
    torch.testing.assert_close(nx, torch.full_like(nx, point["norm"]), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        ny, torch.full_like(ny, point["norm"] * point["norm_ratio"]), rtol=0, atol=1e-12
    )
    if point["norm"] > 0:
        cos = (x * y).sum(-1) / (nx * ny)
        torch.testing.assert_close(
            cos, torch.full_like(cos, math.cos(math.radians(point["angle"]))), rtol=0, atol=1e-12
        )
    x2, y2 = make_inputs(point, 7)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_cell_seeds_are_derived_from_the_cell_not_the_draws():
    c = tiny()
    a = cell_spec(c, c.series[0], 0.25, draws=512, block=128)
    assert a == cell_spec(c, c.series[0], 0.25, draws=512, block=128)
    assert a["seed"] == cell_spec(c, c.series[0], 0.25, draws=4096, block=256)["seed"]
    assert a["seed"] != cell_spec(c, c.series[1], 0.25, draws=512, block=128)["seed"]
    assert a["seed"] != cell_spec(c, c.series[0], 0.5, draws=512, block=128)["seed"]
    assert (
        a["seed"]
        != cell_spec(dataclasses.replace(c, seed=1), c.series[0], 0.25, draws=512, block=128)["seed"]
    )
    # every series shares the inputs at a point; a different point, or another figure seed, changes them
    assert a["inputs_seed"] == cell_spec(c, c.series[1], 0.25, draws=512, block=128)["inputs_seed"]
    assert a["inputs_seed"] != cell_spec(c, c.series[2], 0.25, draws=512, block=128)["inputs_seed"]
    assert cell_digest(a) != cell_digest(cell_spec(c, c.series[0], 0.25, draws=1024, block=128))


def test_a_cell_split_into_block_ranges_merges_bitwise_into_the_whole_cell():
    c = tiny(draws=700, block=100)
    spec = plan(c)[5][2]  # the OPRF cell: data-dependent statistics on a 2-pair sequence
    whole = evaluate_cell(spec)
    parts = [evaluate_cell(spec, range(a, b)) for a, b in ((0, 3), (3, 4), (4, 7))]
    assert_bitwise(parts[0] + (parts[1] + parts[2]), whole)
    assert_bitwise((parts[0] + parts[1]) + parts[2], whole)
    # the cell is the moment engine run on the estimator's draws, nothing more
    from kerneltheory.experiments import build_estimator

    est = build_estimator(spec)
    x, y = make_inputs(spec["point"], spec["inputs_seed"])
    ref = moments(lambda g, r: est.sample_estimates(x, y, g, r), 700, seed=spec["seed"], block=100)
    assert_bitwise(whole, ref)


def test_learnable_laws_are_perturbed_deterministically():
    from kerneltheory.experiments import build_estimator

    c = default_configs()[-1]
    init, pert = (cell_spec(c, s, 4, draws=64, block=64) for s in c.series[:2])
    a, b, b2 = build_estimator(init), build_estimator(pert), build_estimator(pert)
    assert not torch.equal(a.law.means, b.law.means)
    assert torch.equal(b.law.means, b2.law.means)


# -- statistics -----------------------------------------------------------------------------------------


@pytest.mark.statistical
def test_measured_variance_agrees_with_the_closed_form(tmp_path, kt_seed):
    """Bounded trig features (finite fourth moment): z = (s² − V)/SE(s²) → N(0, 1); Bonferroni over the cells."""
    c = dataclasses.replace(tiny(seed=kt_seed, draws=8192, block=2048), series=(tiny().series[0],))
    frame = run_figure(c, out_dir=tmp_path, progress=False, plot=False).frame
    z = ((frame["variance"] - frame["closed_form"]) / frame["variance_se"]).to_numpy()
    from scipy.stats import norm

    crit = norm.isf(ALPHA / (2 * len(z)))
    assert np.abs(z).max() < crit, f"z = {z}, critical {crit:.2f}, seed {kt_seed}"


@pytest.mark.statistical
def test_the_variance_check_has_power_against_a_missing_factor(tmp_path, kt_seed):
    """The same statistic rejects a closed form that is off by a factor 2 (e.g. a missing 1/2 of the paired map)."""
    c = dataclasses.replace(tiny(seed=kt_seed, draws=8192, block=2048), series=(tiny().series[0],))
    frame = run_figure(c, out_dir=tmp_path, progress=False, plot=False).frame
    z = ((frame["variance"] - 2 * frame["closed_form"]) / frame["variance_se"]).to_numpy()
    assert np.abs(z).min() > 6, z


def test_moment_columns_match_numpy():
    from kerneltheory.montecarlo import block_seed, moments_of_blocks

    def draws(gen, r):
        return torch.randn(r, 2, generator=gen, dtype=torch.float64).exp()

    m = moments_of_blocks(draws, 4000, seed=2, block=1000)
    samples = torch.cat(
        [draws(torch.Generator().manual_seed(block_seed(2, b)), 1000) for b in range(4)]
    ).numpy()
    cols = moment_columns(m, np.ones(2))
    np.testing.assert_allclose(cols["variance"], samples.var(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(cols["mse"], ((samples - 1) ** 2).mean(0), rtol=1e-12)
    n, mu2, mu4 = len(samples), samples.var(0), ((samples - samples.mean(0)) ** 4).mean(0)
    np.testing.assert_allclose(
        cols["variance_se"], np.sqrt((mu4 - mu2**2 * (n - 3) / (n - 1)) / n), rtol=1e-10
    )
    np.testing.assert_allclose(
        cols["variance_hi"] - cols["variance"], 1.959963984540054 * cols["variance_se"]
    )


# -- running, resuming, distributing --------------------------------------------------------------------


def test_run_writes_tidy_parquet_and_figure_and_resumes_from_cache(tmp_path):
    c = tiny()
    r = run_figure(c, out_dir=tmp_path, progress=False)
    assert r.parquet.is_file() and r.png.is_file() and r.png.read_bytes()[:4] == b"\x89PNG"
    frame = pd.read_parquet(r.parquet)
    assert len(frame) == 2 * (2 + 2 + 2)  # values × series × pairs
    assert {
        "figure",
        "panel",
        "label",
        "estimator",
        "x",
        "pair",
        "variance",
        "variance_lo",
        "variance_hi",
        "closed_form",
        "iid",
        "orf_bound",
        "kernel",
        "mse",
        "cell",
    } <= set(frame.columns)
    assert frame.loc[frame.label == "trig", "closed_form"].notna().all()
    assert frame.loc[frame.label == "orth", "closed_form"].isna().all()
    assert frame.loc[frame.label == "orth", ["iid", "orf_bound"]].notna().all().all()
    assert r.computed == 6 and r.cached == 0
    again = run_figure(c, out_dir=tmp_path, progress=False, plot=False)
    assert again.computed == 0 and again.cached == 6
    pd.testing.assert_frame_equal(again.frame, r.frame, check_exact=True)


def test_cells_computed_by_other_code_are_recomputed_and_kept(tmp_path, monkeypatch):
    """A cell's key holds the digest of the package's source: after a change to the code (here, estimates doubled),
    `kerneltheory report` recomputed its claim matrix but reused every variance cell, and showed the old code's
    figures beside the new verdicts (a review finding). The cells of other code are recomputed; their files stay,
    under their own digests, and are reused again by that code."""
    import kerneltheory.experiments.cells as cells_module

    c = tiny()
    first = run_figure(c, out_dir=tmp_path, progress=False, plot=False)
    files = sorted((tmp_path / "cells").glob("*.json"))
    monkeypatch.setattr(cells_module, "source_digest", lambda: "other code")
    other = run_figure(c, out_dir=tmp_path, progress=False, plot=False)
    assert other.computed == 6 and other.cached == 0
    assert set(files) < set((tmp_path / "cells").glob("*.json"))  # the first code's cells are still there
    monkeypatch.undo()
    again = run_figure(c, out_dir=tmp_path, progress=False, plot=False)
    assert again.computed == 0 and again.cached == 6
    pd.testing.assert_frame_equal(again.frame, first.frame, check_exact=True)


def test_an_interrupted_run_resumes_bitwise_from_its_checkpoints(tmp_path, monkeypatch):
    c = tiny(draws=512, block=64)  # 8 blocks per cell, a checkpoint after every block
    fresh = run_figure(c, out_dir=tmp_path / "fresh", progress=False, plot=False).frame
    real = RandomFeatureEstimator.sample_estimates
    calls = {"n": 0}

    def flaky(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 13:  # inside the second cell, after 4 of its blocks
            raise KeyboardInterrupt
        return real(self, *args, **kw)

    monkeypatch.setattr(RandomFeatureEstimator, "sample_estimates", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_figure(c, out_dir=tmp_path / "run", progress=False, plot=False, checkpoint_seconds=0)
    cells = tmp_path / "run" / "cells"
    assert len(list(cells.glob("*.partial.json"))) == 1 and len(list(cells.glob("*[0-9a-f].json"))) == 1
    partial = json.loads(next(cells.glob("*.partial.json")).read_text())
    assert partial["moments"]["blocks"] == [0, 4]
    monkeypatch.setattr(RandomFeatureEstimator, "sample_estimates", real)
    resumed = run_figure(c, out_dir=tmp_path / "run", progress=False, plot=False)
    assert resumed.cached == 1 and not list(cells.glob("*.partial.json"))
    pd.testing.assert_frame_equal(resumed.frame, fresh, check_exact=True)


def test_a_stale_cell_file_is_ignored(tmp_path):
    c = tiny()
    spec = plan(c)[0][2]
    store = CellStore(tmp_path)
    m = evaluate_cell(spec)
    store.save(spec, m)
    assert_bitwise(store.load(spec), m)
    other = {**spec, "draws": 1024}
    assert store.load(other) is None
    path = next(tmp_path.glob("*.json"))
    path.write_text("{ truncated", encoding="utf-8")
    with pytest.warns(CacheWarning, match="unreadable"):  # said, not silent: the cell is recomputed
        assert store.load(spec) is None


def _assert_dask_run_is_the_local_run(tmp_path, scheduler):
    """Every cell split into shards of 2 RNG blocks on the workers of ``scheduler``, merged in block order:
    bitwise the moments of the local, unsplit run."""
    from kerneltheory.experiments import run_sweeps

    c = tiny(draws=512, block=128)
    local = run_figure(c, out_dir=tmp_path / "local", progress=False, plot=False)
    dist = run_sweeps(
        [c], out_dir=tmp_path / "dask", scheduler=scheduler, shard_blocks=2, progress=False, plot=False
    )[0]
    assert dist.computed == 6
    pd.testing.assert_frame_equal(dist.frame, local.frame, check_exact=True)
    for _, _, spec in plan(c):
        a, b = (
            CellStore(tmp_path / "local" / "cells").load(spec),
            CellStore(tmp_path / "dask" / "cells").load(spec),
        )
        assert_bitwise(a, b)
    assert not list((tmp_path / "dask" / "cells").glob("*.shard-*.json"))  # merged shards are cleaned up


def test_a_two_worker_dask_cluster_in_this_process_gives_results_identical_to_the_local_run(tmp_path):
    """Two single-threaded workers of an in-process cluster (a ``distributed.Client`` passed as the scheduler):
    the shards of a cell are computed on either worker and merged bitwise into the local run's moments."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as lc:
        with distributed.Client(lc) as client:
            _assert_dask_run_is_the_local_run(tmp_path, client)


def test_a_cached_run_does_not_connect_to_its_scheduler(tmp_path, monkeypatch):
    """The scheduler is connected when a cell is left to compute, once per run: a run whose every cell is cached
    finishes without it (an unreachable one failed after its 30 s timeout with nothing to compute), as does one whose
    cells' shards are all stored but not merged (they counted as work), and a run with cells to compute still fails
    on an unreachable scheduler."""
    import kerneltheory.experiments.runner as runner
    from kerneltheory.experiments import run_sweeps

    c = tiny(draws=256, block=128)
    local = run_figure(c, out_dir=tmp_path, progress=False, plot=False)
    opened = []

    @contextlib.contextmanager
    def unreachable(scheduler):
        opened.append(scheduler)
        raise OSError(f"timed out connecting to {scheduler}")
        yield

    monkeypatch.setattr(runner, "open_client", unreachable)
    again = run_sweeps([c], out_dir=tmp_path, scheduler="tcp://10.0.0.1:1",
                       progress=False, plot=False)[0]
    assert opened == [] and again.computed == 0 and again.cached == local.computed
    with pytest.raises(ValueError, match="scheduler must be"):  # a bad address is still an error, cached or not
        run_sweeps([c], out_dir=tmp_path, scheduler="bogus", progress=False, plot=False)
    pd.testing.assert_frame_equal(again.frame, local.frame, check_exact=True)
    sharded = tiny(seed=2, draws=256)  # every shard of every cell stored, none merged: nothing left to submit
    store = CellStore(tmp_path / "sharded" / "cells")
    for _, _, spec in plan(sharded):
        for a in range(0, 2):
            store.save_shard(spec, evaluate_cell(spec, range(a, a + 1)))
    merged = run_sweeps([sharded], out_dir=tmp_path / "sharded", scheduler="tcp://10.0.0.1:1", shard_blocks=1,
                        progress=False, plot=False)[0]
    assert opened == [] and merged.computed == len({cell_digest(c[2]) for c in plan(sharded)}), merged
    fresh = run_figure(sharded, out_dir=tmp_path / "fresh", progress=False, plot=False)
    pd.testing.assert_frame_equal(merged.frame, fresh.frame, check_exact=True)
    with pytest.raises(OSError, match="timed out connecting"):
        run_sweeps([tiny(seed=1, draws=256)], out_dir=tmp_path, scheduler="tcp://10.0.0.1:1", progress=False,
                   plot=False)
    assert opened == ["tcp://10.0.0.1:1"]


# Slow tier: starting two worker processes (each imports torch and the package) costs about 7 s of CPU. The
# sharding, the merge and the identity with the local run are covered in the default tier by
# test_a_two_worker_dask_cluster_in_this_process_gives_results_identical_to_the_local_run; this one adds the
# worker processes of scheduler="local:2" (open_client's LocalCluster).
@pytest.mark.slow
def test_a_two_worker_dask_cluster_gives_results_identical_to_the_local_run(tmp_path):
    """Worker *processes* (LocalCluster(n_workers=2, threads_per_worker=1, processes=True))."""
    pytest.importorskip("distributed")
    _assert_dask_run_is_the_local_run(tmp_path, "local:2")


# -- the command ----------------------------------------------------------------------------------------


def test_the_variance_command(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(to_toml(tiny()), encoding="utf-8")
    assert main(["--list", "--config", str(cfg)]) == 0
    assert "tiny" in capsys.readouterr().out
    assert (
        main(
            [
                "--config",
                str(cfg),
                "--out",
                str(tmp_path / "out"),
                "--quiet",
                "--draws",
                "256",
                "--block",
                "128",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "## tiny" in out and "6 cells computed" in out
    assert (tmp_path / "out" / "tiny.parquet").is_file() and (tmp_path / "out" / "tiny.png").is_file()
    assert pd.read_parquet(tmp_path / "out" / "tiny.parquet")["draws"].eq(256).all()
    assert main(["--write-configs", str(tmp_path / "cfg")]) == 0
    assert len(list((tmp_path / "cfg").glob("*.toml"))) == len(default_configs())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "nope"], "unknown figure"),
        (["--device", "tpu"], "--device must be cpu or cuda"),
        (["--scheduler", "local:0"], "scheduler must be"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--rng", "device"], "--rng device draws the frequencies on the GPU: it needs --device cuda"),
        (["--rng", "gpu"], "invalid choice: 'gpu'"),
    ],
)
def test_the_variance_command_refuses_bad_arguments(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path), "--quiet"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_is_refused_without_a_gpu(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--device", "cuda", "--out", str(tmp_path), "--quiet"])
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_cells_agree_with_the_closed_form(tmp_path):  # pragma: no cover - GPU only
    c = dataclasses.replace(tiny(draws=2**16, block=2**14), series=(tiny().series[0],))
    frame = run_figure(c, out_dir=tmp_path, device="cuda", progress=False, plot=False).frame
    assert (frame["device"] == "cuda").all()
    z = ((frame["variance"] - frame["closed_form"]) / frame["variance_se"]).abs()
    assert z.max() < 6


def test_the_rng_enters_the_cell_key_only_when_drawn_on_the_device():
    """The default CPU stream keeps every cached cell's key; rng='device' is another stream and another key, and
    is refused on the CPU."""
    c = tiny()
    spec = cell_spec(c, c.series[0], 0.25, draws=512, block=128)
    assert "rng" not in spec and spec == cell_spec(c, c.series[0], 0.25, draws=512, block=128, rng="cpu")
    with pytest.raises(ValueError, match="needs device='cuda'"):
        cell_spec(c, c.series[0], 0.25, draws=512, block=128, rng="device")
    with pytest.raises(ValueError, match="rng must be 'cpu' or 'device'"):
        cell_spec(c, c.series[0], 0.25, draws=512, block=128, rng="gpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rng_cells_replay_and_agree_with_the_closed_form(tmp_path):  # pragma: no cover - GPU only
    """Frequencies drawn on the GPU: every series of the tiny figure replays bitwise from an empty cache, has
    its own cache key, and its variance agrees with the closed form as the CPU stream's does."""
    c = tiny(draws=2**16, block=2**14)
    runs = [run_figure(c, out_dir=tmp_path / str(i), device="cuda", rng="device", progress=False, plot=False).frame
            for i in range(2)]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    frame = runs[0]
    z = ((frame["variance"] - frame["closed_form"]) / frame["variance_se"]).abs().dropna()
    assert len(z) and z.max() < 6
    spec = cell_spec(c, c.series[0], 0.25, draws=2**16, block=2**14, device="cuda")
    assert cell_digest(spec) != cell_digest({**spec, "rng": "device"})


def test_config_errors_name_the_file_figure_and_series(tmp_path):
    """A file that is not valid TOML is named in the error; an estimator argument that does not exist is named with
    its figure and series before any cell is computed."""
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "x"\nvalues = [1, 2\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.toml: not valid TOML"):
        load_config(bad)
    c = tiny()
    typo = dataclasses.replace(c, series=(*c.series, Series("trig/gaussian", "typo", "a", kwargs={"weigthed": True})))
    with pytest.raises(ValueError, match=r"figure 'tiny', series\[3\] 'typo' \(trig/gaussian\): .*weigthed"):
        run_figure(typo, out_dir=tmp_path / "out", progress=False, plot=False)
    assert not (tmp_path / "out" / "cells").exists() or not any((tmp_path / "out" / "cells").iterdir())


def test_repeated_axis_values_are_an_error():
    """A repeated value was drawn twice and gave two rows of one point."""
    from kerneltheory.experiments import ScaleSpec

    with pytest.raises(ValueError, match="scale values must be distinct, got \\[4, 4\\]"):
        ScaleSpec((4, 4), 1000, 256)
