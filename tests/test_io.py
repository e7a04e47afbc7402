"""Atomic writes: a result file is either the old one or the complete new one, never a truncated one."""

import os

import pandas as pd
import pytest
import torch

from kerneltheory import io


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_writers_produce_complete_files(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    pd.testing.assert_frame_equal(pd.read_parquet(io.write_parquet_atomic(frame, tmp_path / "sub" / "t.parquet")),
                                  frame)
    assert io.write_text_atomic(tmp_path / "t.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    assert io.write_json_atomic(tmp_path / "t.json", {"b": 1, "a": [2]}).read_text() == (
        '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
    )
    obj = {"x": torch.arange(3)}
    assert torch.equal(torch.load(io.save_torch_atomic(obj, tmp_path / "t.pt"), weights_only=True)["x"], obj["x"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    png = io.save_figure_atomic(fig, tmp_path / "t.png", dpi=20)
    plt.close(fig)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(os.stat(p).st_mode & 0o777 == 0o644 for p in tmp_path.rglob("t.*"))
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = io.write_text_atomic(tmp_path / "r.txt", "good\n")

    def broken(tmp):
        with open(tmp, "w") as fh:
            fh.write("half")
        raise KeyboardInterrupt  # an interrupted run, not only an exception

    with pytest.raises(KeyboardInterrupt):
        io.write_atomic(target, broken)
    assert target.read_text() == "good\n"
    assert _leftovers(tmp_path) == []


def test_every_writer_fsyncs_the_new_file_and_its_folder(tmp_path, monkeypatch):
    """The bytes of the renamed file and the rename itself reach the disk: parquet, figures and torch files as
    well as text (each fsync is seen on the temporary file, then on the folder after the rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synced = []
    real = io.fsync_path
    monkeypatch.setattr(io, "fsync_path", lambda p: (synced.append(str(p)), real(p)))
    fig = plt.figure()
    writers = {
        "t.txt": lambda p: io.write_text_atomic(p, "x"),
        "t.json": lambda p: io.write_json_atomic(p, {"a": 1}),
        "t.parquet": lambda p: io.write_parquet_atomic(pd.DataFrame({"a": [1]}), p),
        "t.png": lambda p: io.save_figure_atomic(fig, p, dpi=20),
        "t.pt": lambda p: io.save_torch_atomic({"x": torch.zeros(2)}, p),
    }
    for name, write in writers.items():
        synced.clear()
        write(tmp_path / name)
        assert len(synced) == 2, name
        assert os.path.basename(synced[0]).startswith(f".{name}.") and synced[1] == str(tmp_path), name
    plt.close(fig)
