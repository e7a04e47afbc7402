"""The module adapters' cost per call over calling the module directly: a feature map drawn by
:func:`~kerneltheory.testing.from_module` (a FAVOR+ feature module of 64 features on ``[B, L, H, d]``, two heads, the
audited one beside fixed distractor tokens) and an attention function of
:func:`~kerneltheory.testing.attention_from_module` (a FAVOR+ attention module of 16 features, ``"BLd"`` and
``"BLHd"`` with two heads), each against a loop that calls the same module on inputs already in its layout. CPU time
per call (``time.process_time``, one torch thread), in turns, inside one block of draws as the checks run them
(:func:`~kerneltheory.testing._global_states.kept_global_states`):

    OMP_NUM_THREADS=1 python experiments/bench/module_adapter_overhead.py [--reps 5] [--calls 400]

Run it with ``PYTHONPATH`` set to each tree to compare trees (a script's own directory leads ``sys.path``, so without
it the installed package is timed). Prints one line per turn, case and method, then the medians.
"""
import argparse
import math
import statistics
import time

import torch
from torch import nn

from kerneltheory.testing import attention_from_module, from_module
from kerneltheory.testing._global_states import kept_global_states

D = 4


class Features(nn.Module):
    """exp(xᵀω − ‖x‖²/2)/√m on [B, L, H, d], computed on [B, H, L, d]."""

    def __init__(self, m=64):
        super().__init__()
        self.register_buffer("projection", torch.randn(m, D, dtype=torch.float64))

    @torch.no_grad()
    def redraw(self):
        self.projection.normal_()

    def forward(self, x):
        x = x.transpose(1, 2)
        f = torch.exp(x @ self.projection.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(self.projection.shape[0])
        return f.transpose(1, 2)


class Attention(nn.Module):
    """FAVOR+ attention on [B, L, d] (``heads=False``) or [B, L, H, d], one stabiliser per query and one per key set."""

    def __init__(self, m, heads=False):
        super().__init__()
        self.heads = heads
        self.register_buffer("projection", torch.randn(m, D, dtype=torch.float64))

    def forward(self, q, k, v):
        if self.heads:
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        d = q.shape[-1]

        def log_phi(x):
            return (x * d**-0.25) @ self.projection.T - (x * x * d**-0.5).sum(-1, keepdim=True) / 2

        lq, lk = log_phi(q), log_phi(k)
        pq, pk = (lq - lq.amax(-1, keepdim=True)).exp(), (lk - lk.amax((-2, -1), keepdim=True)).exp()
        out = (pq @ (pk.transpose(-1, -2) @ v)) / (pq @ pk.sum(-2)[..., None])
        return out.transpose(1, 2) if self.heads else out


def cases(length: int = 16, points: int = 64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(points, D, generator=g, dtype=torch.float64)
    module = Features()
    sample = from_module(module, redraw="redraw", layout="BLHd")
    feature = sample(torch.Generator().manual_seed(1))
    x_in = torch.randn(1, points, 2, D, generator=g, dtype=torch.float64)
    yield "features BLHd, 2 heads", lambda: feature(x), lambda: module(x_in)
    q, k, v = (torch.randn(1, length, D, generator=g, dtype=torch.float64) for _ in range(3))
    for layout, heads in (("BLd", False), ("BLHd", True)):
        attention = attention_from_module(lambda m, h=heads: Attention(m, h), layout=layout)(
            16, torch.Generator().manual_seed(2))
        direct = Attention(16, heads).eval()
        args = tuple(t.unsqueeze(2).expand(-1, -1, 2, -1).contiguous() for t in (q, k, v)) if heads else (q, k, v)

        def call(direct=direct, args=args):
            with torch.no_grad():
                return direct(*args)

        yield f"attention {layout}", lambda a=attention: a(q, k, v), call


def main(reps: int, calls: int) -> None:
    torch.set_num_threads(1)
    times: dict[tuple[str, str], list[float]] = {}
    for rep in range(reps):
        with kept_global_states():
            for name, adapter, direct in cases():
                order = (("adapter", adapter), ("direct", direct))
                for method, f in order if rep % 2 == 0 else order[::-1]:
                    f()
                    t = time.process_time()
                    for _ in range(calls):
                        f()
                    us = (time.process_time() - t) / calls * 1e6
                    times.setdefault((name, method), []).append(us)
                    print(f"turn {rep}: {name}, {method}: {us:.1f} µs of CPU per call")
    for (name, method), ts in times.items():
        print(f"median: {name}, {method}: {statistics.median(ts):.1f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="turns of the two methods")
    parser.add_argument("--calls", type=int, default=400, help="calls per turn, case and method")
    args = parser.parse_args()
    main(args.reps, args.calls)
