"""torch modules (kerneltheory.nn): KernelizedAttention, the KL-Transformer, learnable spectra, draws and
their state, gradients (gradcheck in float64 through the features and every learnable parameter),
positivity while training, kernel movement, the synthetic tasks and the ``train`` command.

Nothing here is statistical: every assertion holds for every seed; sizes are tiny (the file runs in well
under a minute).
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from torch.func import functional_call

from kerneltheory.experiments.study import CacheWarning
from kerneltheory.nn import KernelizedAttention, KLTransformer
from kerneltheory.nn.diagnostics import feature_floor, kernel_distance, model_diagnostics
from kerneltheory.nn.experiment import EXTRA_KERNELS, KERNEL_KW, KERNELS, peak_step_memory
from kerneltheory.nn.tasks import (
    LISTOPS_VOCAB,
    evaluate_listops,
    listops_batch,
    listops_expression,
    retrieval_label,
    retrieval_task,
    retrieval_vocab_size,
)

F64 = torch.float64
ALL = KERNELS + EXTRA_KERNELS
LEARNED = ("GMM-RKS", "GMM-PRF", "FastFood-RKS", "FastFood-PRF", "Generative-RKS", "Generative-PRF")
POSITIVE = ("GMM-PRF", "FastFood-PRF", "Generative-PRF", "Performer", "feedforward", "hedgehog", "elu+1")
SMALL_KW = {
    "GMM-RKS": {"components": 2},
    "GMM-PRF": {"components": 2},
    "Generative-RKS": {"hidden": 4},
    "Generative-PRF": {"hidden": 4},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _attn(kernel, d_model=4, heads=2, m=2, dtype=F64, **kw):
    return KernelizedAttention(d_model, heads, kernel, m, dtype=dtype, **{**SMALL_KW.get(kernel, {}), **kw})


def _model(kernel, seed=0, **kw):
    args = {"d_model": 8, "num_heads": 2, "num_layers": 2, "num_features": 4, "max_len": 16, "seed": seed}
    return KLTransformer(
        retrieval_vocab_size(4), 4, kernel=kernel, **{**args, **KERNEL_KW.get(kernel, {}), **kw}
    )


# ---------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, value",
    [
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MIN [MAX 1 2 ] [SM 9 9 ] 3 ]", 2),  # min(2, 18 mod 10 = 8, 3)
        ("[MED 1 2 3 4 ]", 2),  # int((2 + 3) / 2)
        ("[MED 7 1 5 ]", 5),
        ("[SM 5 6 7 ]", 8),
        ("[SM [SM 9 9 ] [MAX 0 [MED 9 8 ] ] 1 ]", 7),  # 8 + 8 + 1 = 17
        ("[MIN [MIN [MIN [MIN 6 ] ] ] ]", 6),
        ("4", 4),
    ],
)
def test_listops_evaluator_hand_checked(expr, value):
    assert evaluate_listops(expr) == value
    assert evaluate_listops(expr.split()) == value


@pytest.mark.parametrize("bad", ["", "[MAX 1 2", "[MAX 1 ] ]", "[FOO 1 ]", "[MAX ]", "1 2", "[MAX 12 ]"])
def test_listops_evaluator_rejects_malformed(bad):
    with pytest.raises(ValueError):
        evaluate_listops(bad)


def test_listops_generator_lengths_labels_and_determinism():
    for n in (4, 17, 64, 2000):
        expr = listops_expression(n, n)
        assert 1 <= len(expr) <= n
        assert 0 <= evaluate_listops(expr) <= 9
    long = listops_expression(3, 2000)
    assert len(long) >= 1200  # the budget is mostly filled
    b1, b2 = listops_batch(6, 48, seed=5), listops_batch(6, 48, seed=5)
    assert torch.equal(b1.tokens, b2.tokens) and torch.equal(b1.labels, b2.labels)
    assert not torch.equal(b1.tokens, listops_batch(6, 48, seed=6).tokens)
    inv = {i: t for t, i in LISTOPS_VOCAB.items()}
    for row, mask, label in zip(b1.tokens, b1.mask, b1.labels, strict=True):
        toks = [inv[int(i)] for i in row[mask]]
        assert evaluate_listops(toks) == int(label)
        assert not bool(mask[mask.sum() :].any())  # padding only at the end


def test_retrieval_label_depends_only_on_planted_tokens():
    n, k, c, nd = 40, 3, 4, 16
    for rule in ("sum", "max"):
        b = retrieval_task(32, n, k, seed=1, num_classes=c, num_distractors=nd, rule=rule)
        planted = b.tokens > nd
        assert bool((planted.sum(1) == k).all())
        values = (b.tokens[planted] - nd - 1).view(32, k)
        assert torch.equal(b.labels, retrieval_label(values, c, rule))
        # new distractors and shuffled positions, same planted values: the same label
        g = torch.Generator().manual_seed(0)
        for i in range(32):
            perm = torch.randperm(n, generator=g)
            shuffled = b.tokens[i][perm].clone()
            keep = shuffled > nd
            shuffled[~keep] = torch.randint(1, nd + 1, (int((~keep).sum()),), generator=g)
            vals = shuffled[shuffled > nd] - nd - 1
            assert int(retrieval_label(vals, c, rule)) == int(b.labels[i])
    # changing one planted value changes a sum label
    assert int(retrieval_label(torch.tensor([1, 2, 0]), 4)) != int(
        retrieval_label(torch.tensor([1, 2, 1]), 4)
    )
    with pytest.raises(ValueError, match="planted"):
        retrieval_task(2, 4, 5, seed=0)


# ---------------------------------------------------------------------------------------------------
# Modules, parameters, state
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ALL)
def test_attention_shapes_and_per_head_parameters(kernel):
    attn = _attn(kernel, d_model=8, heads=2, m=4, dtype=torch.float32)
    x = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    assert attn(x, mask).shape == (3, 5, 8)
    kernel_params = [p for m in (*attn.laws, *attn.components) for p in m.parameters()]
    if kernel in LEARNED or kernel in ("feedforward", "hedgehog"):
        per_head = [
            sum(p.numel() for p in e.law.parameters()) if e.law is not None else 0 for e in attn.estimators
        ]
        per_head = [
            a + sum(p.numel() for p in e.component.parameters())
            for a, e in zip(per_head, attn.estimators, strict=True)
        ]
        assert len(set(per_head)) == 1 and per_head[0] > 0
        assert sum(p.numel() for p in kernel_params) == 2 * per_head[0]
        names = dict(attn.named_parameters())
        assert any(
            n.startswith("laws.1.") or n.startswith("components.1.") for n in names
        )  # head 1 registered
        if kernel != "hedgehog":  # Hedgehog starts at W = I, b = 0 in every head, by design
            flat = [
                torch.cat([p.flatten() for p in (e.law or e.component).parameters()]) for e in attn.estimators
            ]
            assert not torch.equal(flat[0], flat[1])  # each head has its own initial parameters
    else:
        assert kernel_params == []


@pytest.mark.parametrize("kernel", ALL)
def test_state_dict_round_trip(kernel, tmp_path):
    model = _model(kernel, seed=3)
    tokens = retrieval_task(4, 12, 2, seed=0, num_classes=4).tokens
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(3):  # move every parameter away from its initial value (and advance the draw counter)
        loss = model(tokens).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    expected = model(tokens)
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    fresh = _model(kernel, seed=11)
    fresh.eval()
    assert not torch.equal(fresh(tokens), expected)
    fresh.load_state_dict(torch.load(path))  # weights_only loading: tensors and a dict of ints
    fresh.eval()
    assert torch.equal(fresh(tokens), expected)
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), fresh.named_parameters(), strict=True):
        assert n1 == n2 and torch.equal(p1, p2)
    # the draw state travels too: training continues with the same draws
    model.train()
    fresh.train()
    torch.testing.assert_close(model(tokens), fresh(tokens), rtol=0, atol=0)


def test_redraw_schedules_and_deterministic_eval():
    x = torch.randn(2, 6, 4, dtype=F64, generator=torch.Generator().manual_seed(1))

    def outs(attn, calls):
        return [attn(x) for _ in range(calls)]

    fixed = _attn("Performer", redraw="fixed")
    o = outs(fixed, 3)
    assert torch.equal(o[0], o[1]) and torch.equal(o[1], o[2])
    fixed.eval()
    assert torch.equal(fixed(x), o[0])  # "fixed" uses its one draw in evaluation too

    every = _attn("Performer", redraw="call")
    o = outs(every, 3)
    assert not torch.equal(o[0], o[1]) and not torch.equal(o[1], o[2])

    every3 = _attn("Performer", redraw=3)
    o = outs(every3, 6)
    assert torch.equal(o[0], o[2]) and not torch.equal(o[2], o[3]) and torch.equal(o[3], o[5])

    every.eval()
    e1 = every(x)
    every.train()
    outs(every, 2)
    every.eval()
    assert torch.equal(every(x), e1)  # one frozen evaluation draw, whatever training did

    stochastic = _attn("Performer", deterministic_eval=False)
    stochastic.eval()
    assert not torch.equal(stochastic(x), stochastic(x))

    # deterministic maps: nothing to redraw
    elu = _attn("elu+1")
    assert torch.equal(elu(x), elu(x))
    with pytest.raises(ValueError, match="redraw"):
        _attn("Performer", redraw="sometimes")
    with pytest.raises(ValueError, match="divisible"):
        KernelizedAttention(5, 2, "Performer")


def test_no_global_rng_and_seeded_construction():
    state = torch.random.get_rng_state()
    a, b = _model("GMM-PRF", seed=4), _model("GMM-PRF", seed=4)
    tokens = retrieval_task(2, 10, 2, seed=0, num_classes=4).tokens
    ya, yb = a(tokens), b(tokens)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(ya, yb)
    assert not torch.equal(_model("GMM-PRF", seed=5)(tokens), ya)


def test_queries_and_keys_scaled_by_head_dim_to_the_minus_quarter():
    """φ(q̃)ᵀφ(k̃) estimates exp(q̃ᵀk̃) = exp(qᵀk/√d_h) with q̃ = q·d_h^{-1/4} (the softmax scaling)."""
    x = torch.randn(2, 5, 8, dtype=F64, generator=torch.Generator().manual_seed(0))
    soft, perf = _attn("softmax", d_model=8), _attn("Performer", d_model=8)  # one seed: equal projections
    (qs, ks, vs), (qp, kp, vp) = soft.project(x), perf.project(x)
    s = 4**-0.25  # d_h = 8 / 2
    torch.testing.assert_close(qp, qs * s, rtol=1e-15, atol=0)
    torch.testing.assert_close(kp, ks * s, rtol=1e-15, atol=0)
    assert torch.equal(vp, vs)
    torch.testing.assert_close((qp @ kp.transpose(-1, -2)), qs @ ks.transpose(-1, -2) / 4**0.5)


# ---------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ALL)
def test_gradcheck_inputs_and_every_learnable_parameter(kernel):
    attn = _attn(kernel, redraw="fixed")
    g = torch.Generator().manual_seed(2)
    x = 0.5 * torch.randn(1, 3, 4, dtype=F64, generator=g)
    names, params = zip(*[(n, p.detach().clone()) for n, p in attn.named_parameters()], strict=True)
    assert any(n.startswith(("laws.", "components.")) for n in names) == (
        kernel in LEARNED or kernel in ("feedforward", "hedgehog")
    )

    def f(x, *ps):
        return functional_call(attn, dict(zip(names, ps, strict=True)), (x,))

    inputs = (x.requires_grad_(), *(p.requires_grad_() for p in params))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kernel", ["GMM-PRF", "hedgehog", "Generative-RKS"])
def test_gradcheck_causal_and_masked(kernel):
    attn = _attn(kernel, redraw="fixed", causal=True)
    x = 0.5 * torch.randn(2, 4, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    assert torch.autograd.gradcheck(lambda t: attn(t, mask), (x.requires_grad_(),), eps=1e-6, atol=1e-5)


def test_learnable_laws_receive_gradients_through_attention():
    x = torch.randn(2, 5, 4, dtype=F64, generator=torch.Generator().manual_seed(4))
    expect = {
        "GMM-PRF": {"means", "chol_lower", "chol_log_diag"},
        "GMM-RKS": {"means", "chol_lower", "chol_log_diag"},
        "FastFood-PRF": {"S", "G", "B"},
        "FastFood-RKS": {"S", "G", "B"},
        "Generative-PRF": {"net.0.weight", "net.0.bias", "net.2.weight", "net.4.weight"},
        "feedforward": {"w1", "b1", "w2", "b2"},
        "hedgehog": {"weight", "bias"},
    }
    for kernel, names in expect.items():
        attn = _attn(kernel, m=4)
        attn(x).square().sum().backward()
        for module in (*attn.laws, *attn.components):
            grads = {n: p.grad for n, p in module.named_parameters()}
            for n in names & grads.keys():
                assert grads[n] is not None and bool(grads[n].abs().sum() > 0), (kernel, n)
            if "logits" in grads:  # the mixture weights: only through the closed-form kernel (documented)
                assert grads["logits"] is None or bool((grads["logits"] == 0).all())


# ---------------------------------------------------------------------------------------------------
# Diagnostics: positivity while training, kernel movement, memory
# ---------------------------------------------------------------------------------------------------


def _train(model, steps, lr, record=None):
    batches = [retrieval_task(8, 12, 2, seed=s, num_classes=4, rule="max") for s in range(steps)]
    held = retrieval_task(4, 12, 2, seed=999, num_classes=4, rule="max")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for b in batches:
        loss = torch.nn.functional.cross_entropy(model(b.tokens), b.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if record is not None:
            record.append(_floor(model, held.tokens))
    return held


def _floor(model, tokens):
    model.eval()
    with torch.no_grad():
        out = []
        for attn, h in zip(model.attention_layers, model.layer_inputs(tokens), strict=True):
            q, k, _ = attn.project(h)
            out.append(feature_floor(attn, q, k))
    model.train()
    return out


@pytest.mark.parametrize("kernel", POSITIVE)
def test_positive_variants_stay_positive_while_training(kernel):
    model = _model(kernel)
    floors = []
    _train(model, 12, lr=0.05, record=floors)  # a large learning rate: parameters move far
    for step in floors:
        for layer in step:
            assert layer["all_positive"], (kernel, layer)
            assert np.isfinite(layer["min_log_feature"])


def test_signed_maps_are_reported_not_positive():
    """The positivity record can fail: trigonometric (RKS) features take negative values."""
    model = _model("GMM-RKS")
    held = retrieval_task(4, 12, 2, seed=999, num_classes=4)
    assert not any(layer["all_positive"] for layer in _floor(model, held.tokens))


@pytest.mark.parametrize("kernel", ["GMM-PRF", "FastFood-PRF", "Generative-RKS", "hedgehog", "feedforward"])
def test_learning_moves_the_kernel(kernel):
    model = _model(kernel)
    initial = copy.deepcopy(model)
    held = retrieval_task(4, 12, 2, seed=999, num_classes=4)
    d0 = model_diagnostics(initial, model, held.tokens, None, num_pairs=32, draws=32)
    assert d0["kernel_distance"] == 0.0  # exact: common random numbers for Monte Carlo kernels
    assert d0["attention_distance"] == 0.0
    _train(model, 5, lr=0.05)
    d1 = model_diagnostics(initial, model, held.tokens, None, num_pairs=32, draws=32)
    assert d1["kernel_distance"] > 0.01
    assert d1["kernel_distance"] > 3 * d1["kernel_distance_stderr"]
    assert d1["attention_distance"] > 0
    if kernel in LEARNED:  # the law itself moved (shared noise: exactly 0 before training)
        assert d0["spectrum_shift"] == 0.0 and d1["spectrum_shift"] > 0.01
    else:
        assert np.isnan(d1["spectrum_shift"])  # a deterministic map has no law


@pytest.mark.parametrize("kernel", ["Performer", "RFF", "elu+1", "softmax"])
def test_fixed_kernels_do_not_move(kernel):
    model = _model(kernel)
    initial = copy.deepcopy(model)
    _train(model, 3, lr=0.05)
    held = retrieval_task(4, 12, 2, seed=999, num_classes=4)
    d = model_diagnostics(initial, model, held.tokens, None, num_pairs=16, draws=8)
    assert d["kernel_distance"] == 0 and d["attention_distance"] == 0
    assert d["spectrum_shift"] == 0 if kernel in ("Performer", "RFF") else np.isnan(d["spectrum_shift"])


def test_kernel_distance_matches_a_planted_change():
    """Shift one head's mixture means: Δ equals the closed-form relative change computed by hand."""
    a = _attn("GMM-RKS", m=4)
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.estimators[0].law.means.add_(0.5)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 10, 2, dtype=F64, generator=g), torch.randn(2, 10, 2, dtype=F64, generator=g)
    with torch.no_grad():
        k0 = torch.stack([e.kernel_pairs(x[h], y[h]) for h, e in enumerate(a.estimators)])
        k1 = torch.stack([e.kernel_pairs(x[h], y[h]) for h, e in enumerate(b.estimators)])
    d = kernel_distance(a, b, x, y)
    assert d["exact"] and d["stderr"] == 0
    assert d["distance"] == pytest.approx(float((k1 - k0).abs().mean() / k0.abs().mean()), rel=1e-12)
    assert d["distance"] > 0


def test_peak_step_memory_sees_tensor_allocations():
    def step():
        t = torch.ones(256, 1024)  # 1 MiB
        (t * 2).sum()

    assert peak_step_memory(step, torch.device("cpu")) >= 2**20


# ---------------------------------------------------------------------------------------------------
# The experiment and the command
# ---------------------------------------------------------------------------------------------------


def test_train_command_writes_tables_figures_and_resumes(tmp_path, capsys, monkeypatch):
    import argparse

    import pandas as pd

    from kerneltheory.commands import train

    out = tmp_path / "kl"
    argv = [
        "--scale",
        "smoke",
        "--out",
        str(out),
        "--kernels",
        "softmax",
        "GMM-PRF",
        "--tasks",
        "retrieval",
        "--workers",
        "1",
        "--quiet",
    ]
    assert train.main(argv) == 0
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["kernel"]) == {"softmax", "GMM-PRF"} and len(results) == 2
    assert {
        "test_accuracy",
        "time_per_step_ms",
        "peak_memory_mb",
        "kernel_distance",
        "min_log_feature",
        "all_positive",
    } <= set(results.columns)
    assert bool(results["all_positive"].all())
    trace = pd.read_parquet(out / "trace.parquet")
    assert sorted(set(trace["step"])) == [0, 2, 4]
    cost = pd.read_parquet(out / "cost.parquet")
    assert len(cost) == 4 and bool((cost["peak_memory_mb"] > 0).all())
    for fig in ("accuracy", "cost", "kernel_distance", "positivity"):
        assert (out / f"{fig}.png").stat().st_size > 0
    assert "Held-out accuracy" in capsys.readouterr().out
    # resume: no cell is recomputed
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    assert train.main([*argv, "--no-figures"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")} == stamps
    # cells and data of other code are recomputed, not reused (a resumed run after a change kept the old accuracies)
    import kerneltheory.report

    data = {p: p.stat().st_mtime_ns for p in (out / "cells" / "data").glob("*.pt")}
    monkeypatch.setattr(kerneltheory.report, "source_digest", lambda: "other code")
    with pytest.warns(CacheWarning) as caught:
        assert train.main([*argv, "--no-figures"]) == 0
    said = {str(w.message).split(": ", 1)[1] for w in caught}
    assert said == {"generated by other code or task settings; recomputing it",
                    "written for another configuration or by other code (its key differs); recomputing it"}, said
    after = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    assert after.keys() == stamps.keys() and all(after[p] != stamps[p] for p in stamps)
    assert all(p.stat().st_mtime_ns != t for p, t in data.items())
    monkeypatch.undo()
    # another configuration in the same directory is refused
    with pytest.raises(SystemExit) as exc:
        train.main(["--scale", "quick", "--out", str(out), "--quiet"])
    assert exc.value.code == 2
    # register() adds the subcommand to a parser the integrator owns
    parser = argparse.ArgumentParser()
    train.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--scale", "smoke", "--device", "cpu"])
    assert args.func is train.run and args.scale == "smoke"


def test_kernel_list_covers_the_issue():
    assert set(LEARNED) | {"softmax", "Performer", "RFF", "elu+1", "feedforward"} == set(KERNELS)
    assert "hedgehog" in EXTRA_KERNELS
    buf = io.BytesIO()
    torch.save(_model("GMM-PRF").state_dict(), buf)  # plain tensors and dicts only
    assert buf.tell() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kernel", ["softmax", "GMM-PRF", "FastFood-RKS", "feedforward"])
def test_cuda_matches_cpu(kernel):
    model = _model(kernel).eval()
    tokens = retrieval_task(2, 12, 2, seed=0, num_classes=4).tokens
    expected = model(tokens)
    got = copy.deepcopy(model).cuda()(tokens.cuda()).cpu()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
