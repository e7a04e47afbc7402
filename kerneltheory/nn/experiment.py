r"""The kernel-learning experiment: every kernel trained on synthetic long-sequence tasks.

For each task (ListOps; retrieval with k planted tokens among n, :mod:`kerneltheory.nn.tasks`), sequence
length, kernel and seed (a *cell*), a :class:`~kerneltheory.nn.KLTransformer` is trained with AdamW and
evaluated on a held-out set shared by every kernel (the training stream too is shared: the same batches in
the same order for every kernel of one seed). Recorded per cell: held-out accuracy, the median time per
training step, the peak memory of one training step, how far learning moved the kernel
(:func:`~kerneltheory.nn.diagnostics.kernel_distance`, Δ between the learned and the initial kernel on
held-out query/key pairs) and the feature floor (minimum feature, in log space, of the evaluation draw on a
held-out batch) at every checkpoint. A separate *cost* sweep times one training step and measures its peak
memory against sequence length up to ``cost_lengths[-1]``.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the pre-step allocation; on the CPU the
running sum of tensor allocations and frees recorded by ``torch.profiler`` (``profile_memory=True``), above
the pre-step level. (``tracemalloc`` does not see tensor memory: torch's CPU allocator bypasses Python's
allocator, so it reports a few hundred bytes for a step that allocates megabytes.)

Outputs under ``out``: ``cells/*.parquet`` (one tidy file per cell, written atomically; an interrupted run
resumes, skipping cells already written; ``cells/data`` caches the generated data), then
``results.parquet`` (one row per training cell), ``trace.parquet`` (one row per checkpoint),
``cost.parquet``, ``summary.md`` and the seaborn figures ``accuracy.png``, ``cost.png``,
``kernel_distance.png``, ``positivity.png``.

Command: ``kerneltheory train --scale quick --device cpu`` writes ``./kerneltheory-results/kernel_learning/quick``
(``--out DIR`` elsewhere; ``--regenerate`` rewrites the committed ``experiments/kernel_learning``, or
``experiments/kernel_learning/<scale>`` for the other scales, of a source checkout). Every cached cell is checked
before it is reused (:mod:`kerneltheory.experiments.study`): a corrupt one is recomputed with a warning, and one
trained by other code (another digest of the package's source) is retrained.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import io
from .._workers import worker_pool
from ..experiments.study import (
    OutputLock,
    add_output_arguments,
    check_out,
    figure_digest,
    figure_drawn,
    figure_stale,
    output_dir,
    read_checked_parquet,
    reject,
    write_checked_parquet,
)
from ..io import save_torch_atomic, write_parquet_atomic
from . import _init
from .diagnostics import model_diagnostics
from .tasks import LISTOPS_VOCAB, Batch, majority_rate, retrieval_vocab_size, task_batch
from .transformer import KLTransformer

__all__ = ["KERNELS", "SCALES", "Scale", "main", "run", "run_cell", "run_cost_cell"]

KERNELS = (
    "softmax",
    "Performer",
    "RFF",
    "elu+1",
    "GMM-RKS",
    "GMM-PRF",
    "FastFood-RKS",
    "FastFood-PRF",
    "Generative-RKS",
    "Generative-PRF",
    "feedforward",
)
# Hedgehog (also a KernelizedAttention kernel) is left out of the default comparison; add it with
# --kernels ... hedgehog.
EXTRA_KERNELS = ("hedgehog",)
KERNEL_KW = {"GMM-RKS": {"components": 2}, "GMM-PRF": {"components": 2}}
TASKS = ("retrieval", "listops")


@dataclass(frozen=True)
class Scale:
    """One experiment configuration (``SCALES``)."""

    name: str
    d_model: int
    num_heads: int
    num_layers: int
    num_features: int
    batch_size: int
    steps: int
    lr: float
    eval_every: int
    eval_size: int
    lengths: dict = field(default_factory=dict)  # task -> tuple of sequence lengths
    seeds: tuple = (0, 1)
    kernels: tuple = KERNELS
    cost_lengths: tuple = (128, 256, 512, 1024, 2048)
    cost_batch: int = 2
    cost_steps: int = 3
    retrieval: dict = field(default_factory=lambda: {"planted": 2, "num_classes": 4, "rule": "max"})
    listops: dict = field(default_factory=lambda: {"max_depth": 10, "max_args": 5})
    diag_pairs: int = 128
    diag_draws: int = 4096  # Monte Carlo draws of Δ for kernels without a closed form
    diag_tv_draws: int = 128  # ... and of the attention distance (a [draws, 32, 128] Gram tensor)
    diag_batch: int = 8
    redraw: str | int = "call"
    grad_clip: float = 1.0

    def task_kw(self, task: str) -> dict:
        return dict(self.retrieval if task == "retrieval" else self.listops)

    def vocab_and_classes(self, task: str) -> tuple[int, int]:
        if task == "listops":
            return len(LISTOPS_VOCAB), 10
        c = self.retrieval["num_classes"]
        return retrieval_vocab_size(c), c


SCALES = {
    "quick": Scale(
        "quick",
        d_model=32,
        num_heads=2,
        num_layers=1,
        num_features=16,
        batch_size=16,
        steps=200,
        lr=3e-3,
        eval_every=50,
        eval_size=256,
        lengths={"retrieval": (64, 128), "listops": (64, 128)},
        seeds=(0, 1),
        cost_lengths=(128, 512, 2048),
    ),
    "full": Scale(
        "full",
        d_model=64,
        num_heads=4,
        num_layers=2,
        num_features=32,
        batch_size=32,
        steps=3000,
        lr=1e-3,
        eval_every=250,
        eval_size=1024,
        lengths={"retrieval": (256, 1024, 2000), "listops": (500, 1000, 2000)},
        seeds=(0, 1, 2),
        cost_lengths=(256, 512, 1024, 2048, 4096, 8192),
        cost_batch=4,
        cost_steps=5,
        diag_pairs=256,
        diag_draws=16384,
        diag_tv_draws=256,
    ),
    # the sparse end of retrieval on the CPU: n = 256 (k/n = 1/128), larger batches, more steps (~10 min)
    "sparse": Scale(
        "sparse",
        d_model=32,
        num_heads=2,
        num_layers=1,
        num_features=16,
        batch_size=32,
        steps=300,
        lr=3e-3,
        eval_every=50,
        eval_size=256,
        lengths={"retrieval": (256,)},
        seeds=(0, 1),
        cost_lengths=(),
    ),
    # a seconds-long run for the tests: every code path, nothing learned
    "smoke": Scale(
        "smoke",
        d_model=8,
        num_heads=2,
        num_layers=1,
        num_features=4,
        batch_size=4,
        steps=4,
        lr=1e-2,
        eval_every=2,
        eval_size=8,
        lengths={"retrieval": (16,), "listops": (16,)},
        seeds=(0,),
        cost_lengths=(16, 32),
        cost_batch=1,
        cost_steps=1,
        diag_pairs=8,
        diag_draws=8,
        diag_tv_draws=8,
        diag_batch=2,
    ),
}


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def _dataset(out: Path, scale: Scale, task: str, n: int, stream: str, seed: int, count: int) -> Batch:
    """``count`` examples of one data stream, generated once and cached under ``out/data`` (all kernels of
    one seed read the same training batches; all cells of one (task, n) the same held-out set). The cache
    lives under ``cells/`` with the other resume files (tokens stored as int16), keyed by the task's settings and the
    package's source: data generated by other code or settings is regenerated."""
    from ..report import source_digest

    path = out / "cells" / "data" / f"{task}_n{n}_{stream}_s{seed}_c{count}.pt"
    key = json.dumps({"task": scale.task_kw(task), "source": source_digest()}, sort_keys=True)
    if path.exists():
        try:
            d = torch.load(path, weights_only=True)
            b = Batch(d["tokens"].long(), d["mask"], d["labels"])
            ok = b.tokens.shape == b.mask.shape == (count, n) and b.labels.shape == (count,)
            why = "tensors of the wrong shape"
            if ok and d.get("key") != key:
                ok, why = False, "generated by other code or task settings"
        except Exception as exc:  # noqa: BLE001 - any unreadable cache file is regenerated
            ok, why = False, f"unreadable ({type(exc).__name__})"
        if ok:
            return b
        reject(path, why)
    stream_id = {"train": 1, "test": 2}[stream]
    b = task_batch(task, count, n, _init.derive_seed(seed, n, stream_id) % 2**31, **scale.task_kw(task))
    save_torch_atomic({"tokens": b.tokens.to(torch.int16), "mask": b.mask, "labels": b.labels, "key": key}, path)
    return b


# ---------------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_step_memory(step, device: torch.device) -> int:
    """Peak bytes allocated by ``step()`` above the level before it (CUDA: allocator statistics; CPU: the
    running sum of the allocations and frees the profiler records)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    running = peak = 0
    for ev in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += ev.self_cpu_memory_usage
        peak = max(peak, running)
    return int(peak)


def _build(scale: Scale, task: str, kernel: str, seed: int, device, max_len: int) -> KLTransformer:
    vocab, classes = scale.vocab_and_classes(task)
    return KLTransformer(
        vocab,
        classes,
        d_model=scale.d_model,
        num_heads=scale.num_heads,
        num_layers=scale.num_layers,
        kernel=kernel,
        num_features=scale.num_features,
        max_len=max_len,
        seed=seed,
        device=device,
        redraw=scale.redraw,
        nonfinite="allow",  # the training loop counts and skips non-finite steps (signed maps)
        **KERNEL_KW.get(kernel, {}),
    )


def _loss(model, b: Batch):
    return torch.nn.functional.cross_entropy(model(b.tokens, b.mask), b.labels)


@torch.no_grad()
def _accuracy(model, b: Batch, chunk: int = 128) -> float:
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, b.labels.shape[0], chunk):
        part = Batch(b.tokens[i : i + chunk], b.mask[i : i + chunk], b.labels[i : i + chunk])
        correct += int((model(part.tokens, part.mask).argmax(-1) == part.labels).sum())
    model.train(was)
    return correct / b.labels.shape[0]


# ---------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------


def cell_name(task: str, n: int, kernel: str, seed: int) -> str:
    return f"train__{task}__n{n}__{_slug(kernel)}__s{seed}"


def run_cell(
    scale: Scale, task: str, n: int, kernel: str, seed: int, out: str, device: str = "cpu", threads: int = 1
) -> str:
    """Train one cell and write ``cells/<name>.parquet`` (summary) and ``cells/<name>.trace.parquet``."""
    import pandas as pd

    torch.set_num_threads(threads)
    out_p, dev = Path(out), torch.device(device)
    name = cell_name(task, n, kernel, seed)
    target = out_p / "cells" / f"{name}.parquet"
    key = _cell_key(scale, name, dev)
    if _load_cell(out_p, name, key) is not None:
        return name
    t_start = time.perf_counter()
    train = _dataset(out_p, scale, task, n, "train", seed, scale.steps * scale.batch_size).to(dev)
    test = _dataset(out_p, scale, task, n, "test", 10**6, scale.eval_size).to(dev)
    diag = Batch(
        test.tokens[: scale.diag_batch], test.mask[: scale.diag_batch], test.labels[: scale.diag_batch]
    )
    model = _build(scale, task, kernel, seed, dev, n)
    initial = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=scale.lr, weight_decay=0.0)
    kernel_params = sum(
        p.numel() for a in model.attention_layers for m in (*a.laws, *a.components) for p in m.parameters()
    )
    positive_claim = all(a.positive for a in model.attention_layers)

    trace, step_times, nonfinite = [], [], 0
    last_loss = math.nan

    def checkpoint(step: int) -> None:
        d = model_diagnostics(
            initial,
            model,
            diag.tokens,
            diag.mask,
            num_pairs=scale.diag_pairs,
            draws=scale.diag_draws,
            tv_draws=scale.diag_tv_draws,
            seed=seed,
        )
        trace.append({"step": step, "test_accuracy": _accuracy(model, test), "train_loss": last_loss, **d})

    checkpoint(0)
    for step in range(scale.steps):
        sl = slice(step * scale.batch_size, (step + 1) * scale.batch_size)
        b = Batch(train.tokens[sl], train.mask[sl], train.labels[sl])
        _sync(dev)
        t0 = time.perf_counter()
        loss = _loss(model, b)
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), scale.grad_clip)
            grads_ok = all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())
            if grads_ok:
                opt.step()
            else:
                nonfinite += 1
        else:
            nonfinite += 1
        _sync(dev)
        step_times.append(time.perf_counter() - t0)
        last_loss = float(loss.detach())
        if (step + 1) % scale.eval_every == 0 or step + 1 == scale.steps:
            checkpoint(step + 1)

    model.zero_grad(set_to_none=True)  # nothing allocated before the profiled step is freed inside it

    def measured_step():
        loss = _loss(
            model,
            Batch(
                train.tokens[: scale.batch_size],
                train.mask[: scale.batch_size],
                train.labels[: scale.batch_size],
            ),
        )
        loss.backward()
        model.zero_grad(set_to_none=True)

    peak = peak_step_memory(measured_step, dev)
    final = trace[-1]
    summary = {
        "scale": scale.name,
        "task": task,
        "length": n,
        "kernel": kernel,
        "seed": seed,
        "device": dev.type,
        "steps": scale.steps,
        "test_accuracy": final["test_accuracy"],
        "best_test_accuracy": max(t["test_accuracy"] for t in trace),
        "majority_baseline": majority_rate(test.labels.cpu()),
        "final_train_loss": last_loss,
        "time_per_step_ms": 1e3 * statistics.median(step_times),
        "peak_memory_mb": peak / 2**20,
        "kernel_distance": final["kernel_distance"],
        "kernel_distance_stderr": final["kernel_distance_stderr"],
        "kernel_distance_exact": final["kernel_distance_exact"],
        "attention_distance": final["attention_distance"],
        "spectrum_shift": final["spectrum_shift"],
        "min_feature": min(t["min_feature"] for t in trace),
        "min_log_feature": min(t["min_log_feature"] for t in trace),
        "all_positive": all(t["all_positive"] for t in trace),
        "positive_claim": positive_claim,
        "nonfinite_steps": nonfinite,
        "kernel_params": kernel_params,
        "params": sum(p.numel() for p in model.parameters()),
        "wall_s": time.perf_counter() - t_start,
    }
    keys = {k: summary[k] for k in ("scale", "task", "length", "kernel", "seed", "device")}
    write_checked_parquet(
        pd.DataFrame([{**keys, **t} for t in trace]), out_p / "cells" / f"{name}.trace.parquet", key
    )
    # the trained model, for diagnostics after the fact (a resume file: the summary row is written last)
    save_torch_atomic(model.state_dict(), out_p / "cells" / "models" / f"{name}.pt")
    write_checked_parquet(pd.DataFrame([summary]), target, key)
    return name


def _cell_key(scale: Scale, name: str, dev: torch.device) -> dict:
    """What a cell's files are keyed by: the cell, the scale, the device and the package's source (a cell trained by
    other code is retrained, not reused: a resumed run after a fix kept the old code's accuracies)."""
    from ..report import source_digest

    return {"cell": name, "scale": _config(scale), "device": dev.type, "source": source_digest()}


def _load_cell(out: Path, name: str, key: dict):
    """``(summary row, trace)`` of a finished cell whose checked files are on disk, else None."""
    summary = read_checked_parquet(out / "cells" / f"{name}.parquet", key)
    trace = read_checked_parquet(out / "cells" / f"{name}.trace.parquet", key) if summary is not None else None
    return None if trace is None else (summary, trace)


def _cost_name(kernel: str, n: int) -> str:
    return f"cost__{_slug(kernel)}__n{n}"


def run_cost_cell(scale: Scale, kernel: str, n: int, out: str, device: str = "cpu", threads: int = 1) -> str:
    """Time ``cost_steps`` training steps at length ``n`` (after one warm-up) and measure one step's peak
    memory; writes ``cells/cost__<kernel>__n<n>.parquet``."""
    import pandas as pd

    torch.set_num_threads(threads)
    out_p, dev = Path(out), torch.device(device)
    name = _cost_name(kernel, n)
    target = out_p / "cells" / f"{name}.parquet"
    if read_checked_parquet(target, _cell_key(scale, name, dev)) is not None:
        return name
    b = task_batch("retrieval", scale.cost_batch, n, 0, **scale.retrieval).to(dev)
    model = _build(scale, "retrieval", kernel, 0, dev, n)
    opt = torch.optim.AdamW(model.parameters(), lr=scale.lr)

    def step():
        loss = _loss(model, b)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    times = []
    for _ in range(scale.cost_steps):
        _sync(dev)
        t0 = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    peak = peak_step_memory(step, dev)
    row = {
        "scale": scale.name,
        "kernel": kernel,
        "length": n,
        "device": dev.type,
        "batch": scale.cost_batch,
        "time_per_step_ms": 1e3 * statistics.median(times),
        "peak_memory_mb": peak / 2**20,
    }
    write_checked_parquet(pd.DataFrame([row]), target, _cell_key(scale, name, dev))
    return name


# ---------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------


def _config(scale: Scale) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(scale), default=list))


def run(
    scale: Scale | str = "quick",
    out: str | os.PathLike = "kerneltheory-results/kernel_learning/quick",
    *,
    device: str = "cpu",
    workers: int = 1,
    threads: int = 1,
    kernels=None,
    tasks=None,
    figures: bool = True,
    progress: bool = True,
) -> dict:
    """Run (or resume) every cell of ``scale`` into ``out`` (holding its
    :class:`~kerneltheory.experiments.study.OutputLock`); merge the tables and draw the figures (only when
    the tables changed). Returns the paths."""
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
        scale = SCALES[scale]
    if kernels:
        unknown = [k for k in kernels if k not in KERNELS + EXTRA_KERNELS]
        if unknown:
            raise ValueError(f"unknown kernels {unknown}; kernels are {list(KERNELS + EXTRA_KERNELS)}")
        scale = dataclasses.replace(scale, kernels=tuple(kernels))
    if tasks:
        if any(t not in TASKS for t in tasks):
            raise ValueError(f"tasks must be among {list(TASKS)}, got {list(tasks)}")
        scale = dataclasses.replace(scale, lengths={t: scale.lengths[t] for t in tasks if t in scale.lengths})
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if dev.type == "cuda":
        workers = 1
    out_p = check_out(out)
    with OutputLock(out_p):
        return _run(scale, out_p, dev, device, workers, threads, figures, progress)


def _run(scale: Scale, out_p: Path, dev, device: str, workers: int, threads: int, figures: bool, progress: bool):
    import pandas as pd

    cfg_path = out_p / "config.json"
    cfg = {"scale": _config(scale), "device": dev.type}
    try:
        old = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.exists() else None
    except (OSError, ValueError) as exc:
        reject(cfg_path, f"unreadable ({type(exc).__name__})")
        old = None
    if old is not None:
        if old != json.loads(json.dumps(cfg)):
            raise ValueError(
                f"--out {out_p} holds a run with another configuration ({cfg_path}); "
                "use another directory or remove it"
            )
    io.write_json_atomic(cfg_path, cfg)

    train_cells = [
        (t, n, k, s)
        for t, lens in scale.lengths.items()
        for n in lens
        for k in scale.kernels
        for s in scale.seeds
    ]
    cost_cells = [(k, n) for n in scale.cost_lengths for k in scale.kernels]
    done = {c: _load_cell(out_p, cell_name(*c), _cell_key(scale, cell_name(*c), dev)) for c in train_cells}
    todo = [c for c in train_cells if done[c] is None]
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        if progress:
            print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    log(f"{len(train_cells) - len(todo)}/{len(train_cells)} training cells done; running {len(todo)}")
    if workers > 1 and len(todo) > 1:
        with worker_pool(workers) as pool:
            futures = [pool.submit(run_cell, scale, *c, str(out_p), device, threads) for c in todo]
            for i, f in enumerate(futures):
                log(f"[{i + 1}/{len(todo)}] {f.result()}")
    else:
        for i, c in enumerate(todo):
            log(f"[{i + 1}/{len(todo)}] {run_cell(scale, *c, str(out_p), device, threads)}")
    # the cost sweep runs in one process, one cell at a time, so that timings do not compete
    for i, (k, n) in enumerate(cost_cells):
        name = run_cost_cell(scale, k, n, str(out_p), device, threads)
        log(f"cost [{i + 1}/{len(cost_cells)}] {name}")

    cells = out_p / "cells"
    for c in todo:
        done[c] = _load_cell(out_p, cell_name(*c), _cell_key(scale, cell_name(*c), dev))
        if done[c] is None:
            raise RuntimeError(f"training cell {cell_name(*c)} left no readable result in {cells}")
    results = pd.concat([done[c][0] for c in train_cells], ignore_index=True)
    trace = pd.concat([done[c][1] for c in train_cells], ignore_index=True)
    cost = pd.concat(
        [
            pd.DataFrame(
                columns=["scale", "kernel", "length", "device", "batch", "time_per_step_ms", "peak_memory_mb"]
            )
        ]
        + [read_checked_parquet(cells / f"{_cost_name(k, n)}.parquet", _cell_key(scale, _cost_name(k, n), dev))
           for k, n in cost_cells],
        ignore_index=True,
    )
    paths = {
        "results": write_parquet_atomic(results, out_p / "results.parquet"),
        "trace": write_parquet_atomic(trace, out_p / "trace.parquet"),
        "cost": write_parquet_atomic(cost, out_p / "cost.parquet"),
    }
    from .figures import draw_figures, summary_markdown

    paths["summary"] = io.write_text_atomic(out_p / "summary.md", summary_markdown(results, cost, trace))
    if figures:  # the four figures come from the same three tables: redrawn together when one changed
        names = ("accuracy", "cost", "kernel_distance", "positivity")
        data, style = {"results": results, "trace": trace, "cost": cost}, {"dpi": 120, "version": 1}
        wants = [figure_stale(out_p / f"{k}.png", data, style) for k in names if len(cost) or k != "cost"]
        if any(w is not None for w in wants):
            drawn = draw_figures(results, trace, cost, out_p)
            want = figure_digest(data, style)
            for path in drawn.values():
                figure_drawn(path, want)
            paths.update(drawn)
    log(f"done: {', '.join(str(p) for p in paths.values())}")
    return paths


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="kernel_learning", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="quick", help="experiment size (default quick)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    add_output_arguments(p, "kernel_learning", "/<scale>")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel training processes (default: 2 on the CPU, 1 on CUDA)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument(
        "--kernels",
        nargs="+",
        metavar="KERNEL",
        help=f"a subset of {', '.join(KERNELS)}, or extra ones: {', '.join(EXTRA_KERNELS)}",
    )
    p.add_argument("--tasks", nargs="+", choices=TASKS, help="a subset of the tasks")
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def run_from_args(args) -> int:
    workers = args.workers if args.workers is not None else (1 if args.device.startswith("cuda") else 2)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    out = output_dir("kernel_learning", args.out, regenerate=args.regenerate)
    if args.out is None and not (args.regenerate and args.scale == "quick"):
        out = out / args.scale  # the committed quick run is experiments/kernel_learning itself
    paths = run(
        args.scale,
        out,
        device=args.device,
        workers=workers,
        threads=args.threads,
        kernels=args.kernels,
        tasks=args.tasks,
        figures=not args.no_figures,
        progress=not args.quiet,
    )
    print(Path(paths["summary"]).read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_from_args(build_parser().parse_args(argv))
