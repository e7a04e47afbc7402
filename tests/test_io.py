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
    assert torch.equal(torch.load(io.save_torch_atomic(obj, tmp_path / "t.pt"))["x"], obj["x"])
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
