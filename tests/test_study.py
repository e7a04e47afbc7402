"""The experiments' shared layer (kerneltheory/experiments/study.py): output folders, one run per folder, caches
checked before they are trusted, figures redrawn only when their data changed; and the commands' handling of
a bad ``--out``."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from kerneltheory.cli import main
from kerneltheory.experiments import study
from kerneltheory.experiments.study import CacheWarning, Chunks, OutputLock

COMMANDS = ("bench", "sparsity", "train", "turing", "variance")


# -- output folders -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_out_naming_an_existing_file_exits_2_with_a_message(command, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me\n")
    with pytest.raises(SystemExit) as exc:
        main([command, "--out", str(target)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"--out {target}: a file of that name exists" in err and "Traceback" not in err
    assert target.read_text() == "keep me\n"


def test_default_output_is_outside_the_committed_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert study.output_dir("sparsity") == study.Path("kerneltheory-results/sparsity")
    assert study.output_dir("sparsity", tmp_path / "x") == tmp_path / "x"
    root = study.source_checkout()
    if root is not None:  # a source checkout: --regenerate names its committed folder
        assert study.output_dir("turing", regenerate=True) == root / "experiments" / "turing"
    with pytest.raises(ValueError, match="takes no --out"):
        study.output_dir("turing", tmp_path, regenerate=True)


def test_regenerate_is_refused_outside_a_source_checkout(monkeypatch, capsys):
    monkeypatch.setattr(study, "source_checkout", lambda: None)
    with pytest.raises(SystemExit) as exc:
        main(["turing", "--scale", "smoke", "--regenerate"])
    assert exc.value.code == 2
    assert "not imported from one" in capsys.readouterr().err


# -- one run per folder -------------------------------------------------------------------------------------


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_holds_it(tmp_path, capsys):
    with OutputLock(tmp_path / "smoke") as lock:
        assert lock.path.read_text().strip() == str(os.getpid())
        with pytest.raises(ValueError, match=f"in use by another run \\(process {os.getpid()}"):
            OutputLock(tmp_path / "smoke").__enter__()
        with pytest.raises(SystemExit) as exc:  # the command: a clear message, exit status 2
            main(["turing", "--scale", "smoke", "--out", str(tmp_path), "--quiet"])
        assert exc.value.code == 2 and "in use by another run" in capsys.readouterr().err
    assert not (tmp_path / "smoke" / study.LOCK_NAME).exists()
    with OutputLock(tmp_path / "smoke"):  # released: the folder can be locked again
        pass


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    (tmp_path / study.LOCK_NAME).write_text(f"{dead}\n")
    with pytest.warns(UserWarning, match=f"process {dead}, which is not running"), OutputLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())


def test_a_lock_held_by_another_live_process_is_respected(tmp_path):
    # the holder runs study.py's OutputLock alone: the package kerneltheory.experiments is registered without its
    # __init__, which imports torch and pandas (2 s of CPU) for nothing the lock uses
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('kerneltheory.experiments'); pkg.__path__ = [{str(Path(study.__file__).parent)!r}]\n"
        "sys.modules['kerneltheory.experiments'] = pkg\n"
        "from kerneltheory.experiments.study import OutputLock\n"
        f"with OutputLock({str(tmp_path)!r}):\n    print('held', flush=True); sys.stdin.readline()\n"
    )
    root = str(Path(study.__file__).resolve().parents[2])  # this kerneltheory, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=f"process {holder.pid}"):
            OutputLock(tmp_path).__enter__()
    finally:
        holder.communicate("\n", timeout=60)
    with OutputLock(tmp_path):
        pass


# -- checked parquet chunks ---------------------------------------------------------------------------------


def _chunk_frame():
    return pd.DataFrame({"estimator": ["a", "b"], "value": [0.5, float("nan")], "ok": [True, False]})


def _corrupt_random(path):
    path.write_bytes(os.urandom(256))


def _corrupt_truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt_values(path):
    """Valid parquet with the metadata (checksum, key) copied from the original, but other values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[0, "value"] = 123.0
    forged = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(forged, path)


def _corrupt_plain(path):
    """A parquet file without the checksum (written by something else)."""
    pd.DataFrame({"x": [1]}).to_parquet(path)


@pytest.mark.parametrize("corrupt", [_corrupt_random, _corrupt_truncate, _corrupt_values, _corrupt_plain])
def test_a_corrupt_chunk_is_recomputed_with_a_warning(corrupt, tmp_path):
    chunks = Chunks(tmp_path, "part")
    calls = []

    def compute():
        calls.append(1)
        return _chunk_frame()

    first = chunks.get("cell one", {"n": 1}, compute)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pd.testing.assert_frame_equal(chunks.get("cell one", {"n": 1}, compute), first)  # reused, silently
    assert len(calls) == 1 and chunks.reused == 1
    corrupt(chunks.path("cell one", {"n": 1}))
    with pytest.warns(CacheWarning, match="recomputing"):
        again = chunks.get("cell one", {"n": 1}, compute)
    assert len(calls) == 2
    pd.testing.assert_frame_equal(again, first)


def test_a_chunk_of_another_configuration_is_not_used(tmp_path):
    chunks = Chunks(tmp_path, "part")
    chunks.get("c", {"n": 1}, _chunk_frame)
    os.replace(chunks.path("c", {"n": 1}), chunks.path("c", {"n": 2}))  # a file under another config's name
    with pytest.warns(CacheWarning, match="another configuration"):
        assert chunks.load("c", {"n": 2}) is None


# -- checked JSON -------------------------------------------------------------------------------------------


def test_checked_json_round_trips_and_refuses_tampering(tmp_path):
    path = study.write_checked_json(tmp_path / "c.json", {"a": [1.0, 2.0], "b": "x"})
    assert study.read_checked_json(path) == {"a": [1.0, 2.0], "b": "x"}
    data = json.loads(path.read_text())
    data["a"][0] = 5.0
    path.write_text(json.dumps(data))
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        assert study.read_checked_json(path) is None
    path.write_text("[1, 2]")
    with pytest.warns(CacheWarning, match="not a checksummed JSON object"):
        assert study.read_checked_json(path) is None
    study.write_checked_json(path, {"a": -1})
    with pytest.warns(CacheWarning, match="negative"):
        assert study.read_checked_json(path, lambda d: "negative" if d["a"] < 0 else None) is None


# -- figures ------------------------------------------------------------------------------------------------


def test_a_figure_is_redrawn_only_when_its_data_or_parameters_change(tmp_path):
    drawn = []

    def draw(path):
        drawn.append(path.name)
        path.write_bytes(b"png")

    frame = _chunk_frame()
    assert study.draw_if_changed(tmp_path / "f.png", {"t": frame}, {"dpi": 1}, draw)[1]
    assert not study.draw_if_changed(tmp_path / "f.png", {"t": frame.copy()}, {"dpi": 1}, draw)[1]
    changed = frame.copy()
    changed.loc[1, "value"] = 1.0
    assert study.draw_if_changed(tmp_path / "f.png", {"t": changed}, {"dpi": 1}, draw)[1]
    assert study.draw_if_changed(tmp_path / "f.png", {"t": changed}, {"dpi": 2}, draw)[1]
    (tmp_path / "f.png").unlink()  # a missing figure is drawn whatever its digest says
    assert study.draw_if_changed(tmp_path / "f.png", {"t": changed}, {"dpi": 2}, draw)[1]
    assert drawn == ["f.png"] * 4


def test_a_second_sweep_draws_no_figure_and_a_changed_cell_redraws_only_its_figure(tmp_path, monkeypatch):
    import dataclasses

    from kerneltheory.experiments import FigureConfig, ScaleSpec, Series, plots, run_sweeps

    drawn = []
    real = plots.plot_figure
    monkeypatch.setattr(plots, "plot_figure", lambda frame, config, path: (drawn.append(config.name),
                                                                          real(frame, config, path))[1])
    fixed = {"dim": 4, "num_features": 4, "norm": 0.5, "norm_ratio": 1.0, "angle": 60.0, "pairs": 2}
    a, b = (FigureConfig(name=n, title=n, x="norm", seed=1, fixed=fixed, scales={"quick": ScaleSpec((0.5,), 64, 32)},
                         series=(Series("trig/gaussian", "trig", "p"),)) for n in ("fig_a", "fig_b"))
    run = lambda *configs: run_sweeps(list(configs), out_dir=tmp_path, progress=False)  # noqa: E731
    run(a, b)
    assert drawn == ["fig_a", "fig_b"]
    run(a, b)
    assert drawn == ["fig_a", "fig_b"]  # every cell cached, every figure up to date: nothing drawn
    run(dataclasses.replace(a, seed=2), b)  # fig_a's cell changes
    assert drawn == ["fig_a", "fig_b", "fig_a"]
    assert (tmp_path / "fig_a.png.digest").is_file() and (tmp_path / "fig_b.png").is_file()


def test_the_turing_study_resumes_and_redraws_nothing_on_a_second_run(tmp_path, capsys):
    argv = ["turing", "--scale", "smoke", "--parts", "bits", "features", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().err
    assert "wrote 3 tables, redrew 2 figures" in first
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "smoke").rglob("*.p*")}
    assert main(argv) == 0
    assert "redrew 0 figures" in capsys.readouterr().err
    pngs = {p: s for p, s in stamps.items() if p.suffix == ".png" or "chunks" in p.parts}
    assert pngs and all(p.stat().st_mtime_ns == s for p, s in pngs.items())


def test_the_retrieval_training_run_pickles_for_worker_processes():
    """The sparsity study's training runs go to spawned processes, which import the function by name: it must
    live in an importable module (a script loaded under a made-up name made this a PicklingError)."""
    import pickle

    from kerneltheory.experiments import sparsity_kernels

    assert pickle.loads(pickle.dumps(sparsity_kernels.train_retrieval)) is sparsity_kernels.train_retrieval


def test_the_sparsity_study_runs_its_smoke_scale(tmp_path, capsys):
    argv = ["sparsity", "--scale", "smoke", "--parts", "floors", "planted", "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    assert "wrote 3 tables, redrew 2 figures" in capsys.readouterr().err
    floors = pd.read_parquet(tmp_path / "smoke" / "floors.parquet")
    assert (floors["floor_min"] >= floors["bound"] * (1 - 1e-9)).all()  # the proved floors hold
    assert main(argv) == 0
    assert "redrew 0 figures" in capsys.readouterr().err


def test_a_run_of_some_parts_keeps_the_other_parts_in_the_shared_outputs(tmp_path, capsys):
    """Review findings: `--parts features` alone crashed drawing an empty β figure, and a run of some parts rewrote the
    shared tables and summary with those parts only (the other parts' rows vanished; sparsity's summary fell from 151
    to 33 lines). The other parts now come from their checked chunks when all are on disk, and are left out
    otherwise."""
    out = ["--out", str(tmp_path), "--quiet"]
    assert main(["turing", "--scale", "smoke", "--parts", "features", *out]) == 0  # no β part: no β figure, no crash
    assert "(none: no β part has been run" in (tmp_path / "smoke" / "summary.md").read_text()
    assert main(["turing", "--scale", "smoke", "--parts", "bits", "features", *out]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "smoke").glob("*.parquet")}
    summary = (tmp_path / "smoke" / "summary.md").read_text()
    capsys.readouterr()
    assert main(["turing", "--scale", "smoke", "--parts", "bits", *out]) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "smoke").glob("*.parquet")} == before
    assert (tmp_path / "smoke" / "summary.md").read_text() == summary
    capsys.readouterr()
    sparse = ["sparsity", "--scale", "smoke", "--out", str(tmp_path / "s"), "--quiet"]
    assert main([*sparse, "--parts", "floors", "planted"]) == 0
    tables = {p.name: p.read_bytes() for p in (tmp_path / "s" / "smoke").glob("*.parquet")}
    assert main([*sparse, "--parts", "floors"]) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "s" / "smoke").glob("*.parquet")} == tables
    assert "planted: not run now" in capsys.readouterr().err


def test_a_second_report_into_the_same_folder_is_refused(tmp_path, capsys):
    """Review finding: `kerneltheory report` locked only its variance folder, during the sweeps: two reports into one
    folder both ran the whole claim matrix. The report now holds the folder's lock throughout."""
    with OutputLock(tmp_path):
        assert main(["report", "--out", str(tmp_path), "--registry-only", "--quiet"]) == 2
        assert "in use by another run" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path), "--registry-only", "--quiet"]) == 0


def test_a_figure_damaged_beside_its_digest_is_drawn_again(tmp_path):
    """Review finding: only the digest of the inputs was checked, so a figure truncated to 0 bytes beside its digest
    was kept; the sidecar now also holds the hash of the figure drawn."""
    calls = []

    def draw(path):
        calls.append(path)
        path.write_bytes(b"\x89PNG figure")

    fig, data = tmp_path / "f.png", {"x": [1, 2]}
    assert study.draw_if_changed(fig, data, {"dpi": 1}, draw)[1] is True
    assert study.draw_if_changed(fig, data, {"dpi": 1}, draw)[1] is False  # unchanged: kept
    fig.write_bytes(b"")
    assert study.draw_if_changed(fig, data, {"dpi": 1}, draw)[1] is True and fig.read_bytes() == b"\x89PNG figure"
    fig.write_bytes(b"\x89PNG another figure")
    assert study.draw_if_changed(fig, data, {"dpi": 1}, draw)[1] is True and len(calls) == 3


def test_the_committed_figures_match_their_digests():
    """Each committed figure's sidecar names the hash of the figure beside it (a regeneration redraws nothing that
    did not change)."""
    import hashlib

    root = Path(__file__).resolve().parents[1] / "experiments"
    sidecars = sorted(root.rglob("*.png.digest"))
    assert sidecars
    for sidecar in sidecars:
        lines = sidecar.read_text(encoding="ascii").split()
        figure = sidecar.with_name(sidecar.name[: -len(".digest")])
        assert len(lines) == 2 and lines[1] == hashlib.sha256(figure.read_bytes()).hexdigest(), sidecar


def test_a_chunk_computed_by_other_code_is_recomputed(tmp_path, monkeypatch):
    """Review finding: the sparsity and Turing chunks were keyed by their configuration alone, so a run after a change
    of the code (a --regenerate after a fix) reused results of the code before it. The key now holds the source
    digest, as the claim matrix's does."""
    import kerneltheory.report as report

    chunks = Chunks(tmp_path, "part")
    chunks.get("c", {"n": 1}, lambda: pd.DataFrame({"v": [1.0]}))
    assert chunks.get("c", {"n": 1}, lambda: pd.DataFrame({"v": [2.0]}))["v"].tolist() == [1.0]  # same code: reused
    monkeypatch.setattr(report, "source_digest", lambda: "another revision")
    assert Chunks(tmp_path, "part").get("c", {"n": 1}, lambda: pd.DataFrame({"v": [2.0]}))["v"].tolist() == [2.0]
