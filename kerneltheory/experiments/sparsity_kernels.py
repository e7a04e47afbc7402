r"""The sparsity study's kernel-level parts (docs/sparsity.md; proofs/sparsity.md): Performer's small-weight
prediction (:func:`part_performer`), the kernel floors and temperature saturation (:func:`part_floors`), and
the controllable-sparsity retrieval task learned with fixed and learned kernels (:func:`part_retrieval`,
training runs in worker processes: :func:`train_retrieval` is importable, hence picklable).
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch
from tqdm import tqdm

from .. import estimators as E
from .. import sparsity as S
from .. import theory
from .._workers import worker_pool
from ..attention import attention_matrix
from ..testing import sparsity_checks as SC
from ..testing.seeds import seed_for
from .sparsity_attention import build, gen
from .study import Chunks, MissingChunk

PERFORMER = (
    "positive/gaussian",
    "positive/orthogonal",
    "hyperbolic/gaussian",
    "trig/gaussian",
    "oprf/gaussian",
    "saderf/gaussian",
)


# ---------------------------------------------------------------------------------------------------
# Part 3: Performer's small-weight prediction
# ---------------------------------------------------------------------------------------------------


def _relmse(est, x, y, draws, g):
    sm = SC.softmax_pairs(x, y)
    e = (est.sample_estimates(x, y, g, draws) / sm - 1) ** 2
    return e.mean(0), e.std(0) / math.sqrt(draws), sm


def _theory(label, x, y, m):
    sm2 = SC.softmax_pairs(x, y) ** 2
    if label == "positive/gaussian":
        return SC.positive_relative_variance(x, y, m)
    if label == "trig/gaussian":
        return SC.trig_relative_variance(x, y, m)
    if label == "hyperbolic/gaussian":
        return theory.softmax_hyperbolic_variance(x, y, m) / sm2
    return torch.full_like(sm2, math.nan)


def part_performer(cfg: dict, chunks: Chunks, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    d, m = cfg["d"], cfg["m"]
    x1, y1 = SC.small_weight_pairs(d, cfg["zeta"], cfg["taus"], gen("performer", "path"))
    g = gen("performer", "angles")
    basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
    th = torch.tensor(cfg["angles"], dtype=torch.float64) * math.pi / 180
    x2 = cfg["radius"] * basis[:, 0].expand(len(th), d)
    y2 = cfg["radius"] * (torch.cos(th)[:, None] * basis[:, 0] + torch.sin(th)[:, None] * basis[:, 1])
    frames, checks = [], []
    for label in tqdm(PERFORMER, desc="performer", disable=not progress):

        def compute(label=label):
            est = build(label, d, m)
            rows = []
            for path, x, y, par in (
                ("z fixed, tau grows", x1, y1, cfg["taus"]),
                ("norms fixed, angle grows", x2, y2, cfg["angles"]),
            ):
                mean, se, sm = _relmse(est, x, y, cfg["draws"], gen("performer", label, path))
                th_ = _theory(label, x, y, m)
                for i in range(len(par)):
                    rows.append(
                        dict(
                            estimator=label,
                            path=path,
                            parameter=float(par[i]),
                            sm=float(sm[i]),
                            z2=float(((x[i] + y[i]) ** 2).sum()),
                            tau2=float(((x[i] - y[i]) ** 2).sum()),
                            relmse=float(mean[i]),
                            se=float(se[i]),
                            theory=float(th_[i]),
                            m=m,
                        )
                    )
            return pd.DataFrame(rows)

        frames.append(chunks.get(label, {"cfg": cfg, "label": label}, compute))

        def compute_checks(label=label):
            rows = []
            for claim in SC.CLAIMS:
                r = SC.small_weight_check(
                    E.resolve(label),
                    claim=claim,
                    dim=4,
                    num_features=64,
                    draws=cfg["check_draws"],
                    seed=seed_for(f"check:{label}:{claim}"),
                )
                rows.append(dict(estimator=label, **r.as_dict()))
            return pd.DataFrame(rows)

        checks.append(chunks.get(f"check-{label}", {"cfg": cfg, "label": label, "v": 1}, compute_checks))
    return pd.concat(frames, ignore_index=True), pd.concat(checks, ignore_index=True)


# ---------------------------------------------------------------------------------------------------
# Part 4: floors and temperature saturation
# ---------------------------------------------------------------------------------------------------


def _ball(n, d, radius, g):
    u = torch.randn(n, d, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    norms = radius * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1 / d)
    norms[0] = radius  # the boundary is always present
    return u * norms


def part_floors(cfg: dict, chunks: Chunks, progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    d, n = cfg["d"], cfg["n"]
    maps = [("elu+1", 0), ("hedgehog", 0)] + [("feedforward", s) for s in range(cfg["ff_seeds"])]

    def compute_floors():
        rows = []
        for radius in cfg["radii"]:
            x = _ball(n, d, radius, gen("floors", "x", radius))
            y = _ball(n, d, radius, gen("floors", "y", radius))
            sm_floor = S.kernel_floor(torch.exp(x @ y.T))
            rows.append(
                dict(
                    map="softmax exp(xᵀy)",
                    seed=0,
                    radius=radius,
                    floor_min=float(sm_floor.min()),
                    floor_median=float(sm_floor.median()),
                    bound=S.softmax_floor_bound(radius),
                )
            )
            for label, s in maps:
                est = build(label, d, 1, s)
                f = S.kernel_floor(est.draw(gen("floors", label)).estimate(x, y))
                comp = est.component
                if label == "elu+1":
                    bound = S.elu_floor_bound(radius)
                elif label == "hedgehog":
                    bound = S.hedgehog_floor_bound(comp, radius)
                else:
                    bound = S.feedforward_floor_bound(comp, radius)
                rows.append(
                    dict(
                        map=label,
                        seed=s,
                        radius=radius,
                        floor_min=float(f.min()),
                        floor_median=float(f.median()),
                        bound=bound,
                    )
                )
        frame = pd.DataFrame(rows)
        frame["top1_ceiling"] = [S.top_k_ceiling(min(1.0, f), n, 1) for f in frame["floor_min"]]
        return frame

    def compute_saturation():
        g = gen("floors", "saturation")
        q0 = torch.randn(n, d, generator=g, dtype=torch.float64)
        k0 = torch.randn(n, d, generator=g, dtype=torch.float64)
        relu = torch.relu(q0) @ torch.relu(k0).T
        ok = relu.sum(-1) > 0
        rows = [
            dict(
                map="relu(q)ᵀrelu(k) (limit of elu+1)",
                beta=b,
                entropy=float(S.row_entropy(relu[ok] / relu[ok].sum(-1, keepdim=True)).mean()),
            )
            for b in cfg["betas"]
        ]
        for b in cfg["betas"]:
            q, k = q0 * math.sqrt(b), k0 * math.sqrt(b)
            rows.append(
                dict(map="softmax", beta=b, entropy=float(S.row_entropy(S.softmax_matrix(q, k)).mean()))
            )
            for label, s in maps[:3]:
                fm = build(label, d, 1, s).draw(gen("floors", label))
                a = attention_matrix(q * d**-0.25, k * d**-0.25, fm)
                rows.append(dict(map=label, beta=b, entropy=float(S.row_entropy(a).mean())))
        return pd.DataFrame(rows)

    return (
        chunks.get("floors", {"cfg": cfg, "v": 1}, compute_floors),
        chunks.get("saturation", {"cfg": cfg, "v": 1}, compute_saturation),
    )


# ---------------------------------------------------------------------------------------------------
# Part 5: learned kernels on the retrieval task (kerneltheory.nn)
# ---------------------------------------------------------------------------------------------------


def train_retrieval(job: dict) -> dict:
    """Train a one-layer KLTransformer on retrieval_task (k planted tokens among n, parity label)."""
    torch.set_num_threads(1)
    from kerneltheory.nn import KLTransformer
    from kerneltheory.nn.tasks import majority_rate, retrieval_task, retrieval_vocab_size

    kernel, n, seed = job["kernel"], job["length"], job["seed"]
    c, nd, k = job["classes"], job["distractors"], job["planted"]
    kw = {"components": 2} if kernel in ("GMM-PRF", "GMM-RKS") else {}
    model = KLTransformer(
        retrieval_vocab_size(c, nd),
        c,
        d_model=job["d_model"],
        num_heads=job["heads"],
        num_layers=1,
        kernel=kernel,
        max_len=n,
        seed=seed,
        **kw,
    )
    opt = torch.optim.Adam(model.parameters(), lr=job["lr"])
    base = seed_for(f"retrieval:{n}:{seed}") % 2**30
    t0 = time.perf_counter()
    loss = math.nan
    for step in range(job["steps"]):
        b = retrieval_task(job["batch"], n, k, base + step, num_classes=c, num_distractors=nd)
        out = torch.nn.functional.cross_entropy(model(b.tokens), b.labels)
        opt.zero_grad()
        out.backward()
        opt.step()
        loss = out.item()
    model.eval()
    test = retrieval_task(job["eval_size"], n, k, 2**30 + base, num_classes=c, num_distractors=nd)
    with torch.no_grad():
        acc = float((model(test.tokens).argmax(-1) == test.labels).double().mean())
    learnable = any(layer.learnable for layer in model.attention_layers) if kernel != "softmax" else False
    return dict(
        kernel=kernel,
        length=n,
        planted=k,
        sparsity=k / n,
        seed=seed,
        steps=job["steps"],
        accuracy=acc,
        chance=majority_rate(test.labels),
        final_loss=loss,
        learned_kernel=learnable,
        train_seconds=time.perf_counter() - t0,
    )


def part_retrieval(cfg: dict, chunks: Chunks, progress: bool, workers: int) -> pd.DataFrame:
    jobs = []
    for kernel in cfg["kernels"]:
        for n in cfg["lengths"]:
            for seed in cfg["seeds"]:
                job = {
                    key: cfg[key]
                    for key in (
                        "planted",
                        "classes",
                        "distractors",
                        "d_model",
                        "heads",
                        "steps",
                        "batch",
                        "lr",
                        "eval_size",
                    )
                }
                job.update(kernel=kernel, length=n, seed=seed)
                jobs.append(job)
    def name(j: dict) -> str:
        return f"{j['kernel']}-{j['length']}-{j['seed']}"

    frames = {name(j): chunks.load(name(j), j) for j in jobs}
    todo = [j for j in jobs if frames[name(j)] is None]
    if todo and chunks.cached_only:
        raise MissingChunk(str(chunks.path(name(todo[0]), todo[0])))
    chunks.reused += len(jobs) - len(todo)
    bar = tqdm(total=len(jobs), desc="retrieval", disable=not progress, initial=len(jobs) - len(todo))
    if todo and workers > 1:
        with worker_pool(workers) as pool:
            for job, row in zip(todo, pool.map(train_retrieval, todo), strict=True):
                frames[name(job)] = chunks.save(name(job), job, pd.DataFrame([row]))
                bar.update()
    else:
        for job in todo:
            frames[name(job)] = chunks.save(name(job), job, pd.DataFrame([train_retrieval(job)]))
            bar.update()
    bar.close()
    return pd.concat([frames[name(j)] for j in jobs], ignore_index=True)
