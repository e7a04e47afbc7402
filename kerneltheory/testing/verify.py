"""Turning claims into checks: ``check_feature_map`` for any user's map, ``verify_estimator`` for ours.

A report is a list of :class:`~kerneltheory.testing.checks.CheckResult` rows. The false-failure budget α of a
report is split evenly across its statistical checks (Bonferroni), so a correct map fails a whole report with
probability at most α.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from .._validation import check_int, check_points, check_real
from ..montecarlo import moments
from .checks import CheckResult, mean_check, property_check, rounding_floor, variance_check
from .inputs import InputFamily, extreme_points, moderate_families
from .seeds import seed_for

RADIUS = 0.5  # ‖x‖, ‖y‖ ≤ 0.5 so ‖x + y‖² ≤ 1: moderate fourth moments for exponential features (MATH.md §4)
CLAIMS = frozenset({"unbiased", "positive", "variance", "finite"})
BUDGETS = {
    "quick": {"draws": 4096, "block": 512, "property_draws": 16},
    "thorough": {"draws": 65536, "block": 4096, "property_draws": 128},
}


@dataclass
class Report:
    """The result of a set of checks: ``passed`` iff every row passed."""

    subject: str
    checks: list[CheckResult] = field(default_factory=list)
    alpha: float = 1e-6
    budget: str = "quick"
    seed: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict:
        return {
            "subject": self.subject,
            "passed": self.passed,
            "alpha": self.alpha,
            "budget": self.budget,
            "seed": self.seed,
            "checks": [c.as_dict() for c in self.checks],
        }

    def __str__(self) -> str:
        head = (
            f"{self.subject}: {'PASSED' if self.passed else 'FAILED'} "
            f"({sum(c.passed for c in self.checks)}/{len(self.checks)} checks; total α = {self.alpha:g}, "
            f"budget {self.budget}, seed {self.seed})"
        )
        lines = [head]
        for c in self.checks:
            mark = "ok  " if c.passed else ("REFUSED" if c.refused else "FAIL")
            lines.append(
                f"  {mark:7s} {c.name:34s} {c.method:22s} stat={c.statistic:<10.4g} p={c.p_value:<9.3g} "
                f"α={c.alpha:<8.2g} effect={c.effect_size:<9.3g} n={c.sample_size:<6d} seed={c.seed}"
            )
            if c.detail and not c.passed:
                lines.append(f"          {c.detail}")
        return "\n".join(lines)


def _budget(budget: str) -> dict:
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    return BUDGETS[budget]


def _claims(claims) -> set[str]:
    claims = set(claims)
    unknown = claims - CLAIMS
    if unknown:
        raise ValueError(f"claims must be a subset of {sorted(CLAIMS)}, got unknown {sorted(unknown)}")
    if not claims:
        raise ValueError("claims must name at least one claim")
    return claims


def _split_sides(fm) -> tuple[Callable, Callable]:
    if isinstance(fm, tuple):
        if len(fm) != 2 or not all(callable(f) for f in fm):
            raise ValueError("sample(generator) must return a feature function or a (query_fn, key_fn) pair")
        return fm
    if not callable(fm):
        raise ValueError("sample(generator) must return a feature function or a (query_fn, key_fn) pair")
    return fm, fm


def _features(fn, x: torch.Tensor, name: str) -> torch.Tensor:
    out = fn(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{name} must map [n, d] to [n, D], got {shape} for input {tuple(x.shape)}")
    return out.to(torch.float64)


def check_feature_map(
    sample: Callable[[torch.Generator], object],
    kernel: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    dim: int,
    claims,
    variance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    alpha: float = 1e-6,
    seed: int = 0,
    budget: str = "quick",
) -> Report:
    """Verify the claims of a user's random feature map against an exact kernel.

    Args:
        sample: ``sample(generator)`` draws one feature map: a function ``[n, d] → [n, D]`` or a
            ``(query_fn, key_fn)`` pair; called once per draw with a CPU generator seeded from ``seed``.
        kernel: ``kernel(x, y) → [n, n']``, the exact Gram matrix the map claims to estimate.
        dim: input dimension d.
        claims: a subset of ``{"unbiased", "positive", "variance", "finite"}``.
        variance: ``variance(x, y) → [n, n']``, the claimed variance of one draw's estimate φ(x)ᵀφ(y);
            required for the ``"variance"`` claim (and used, when given, by the unbiasedness test).
        inputs: extra ``(x, y)`` pairs of ``[P, d]`` tensors tested on top of the built-in input families.
        alpha: the report's total false-failure rate, split across its checks.
        seed: base seed; every check's seed is derived from it and the check's name.
        budget: ``"quick"`` (4096 draws per check) or ``"thorough"`` (65536).

    Returns:
        a :class:`Report`; ``report.passed`` is True iff every claimed property held.

    Example (a correct positive random feature map for the softmax kernel)::

        import math, torch
        from kerneltheory import kernels
        from kerneltheory.testing import check_feature_map

        def sample(g, d=8, m=64):
            w = torch.randn(m, d, generator=g, dtype=torch.float64)
            return lambda x: torch.exp(x @ w.T - (x * x).sum(-1, keepdim=True) / 2) / math.sqrt(m)

        report = check_feature_map(sample, kernels.softmax, dim=8, claims={"unbiased", "positive", "finite"})
        assert report.passed, str(report)
    """
    d = check_int(dim, "dim", minimum=1)
    claims = _claims(claims)
    alpha = check_real(alpha, "alpha", minimum=0.0, maximum=1.0, strict_min=True, strict_max=True)
    seed = check_int(seed, "seed", minimum=0)
    cfg = _budget(budget)
    if "variance" in claims and variance is None:
        raise ValueError("the 'variance' claim needs variance=callable(x, y) giving the claimed variance")
    if not callable(sample) or not callable(kernel):
        raise TypeError("sample and kernel must be callables")
    families = moderate_families(d, torch.Generator().manual_seed(seed_for("inputs", seed)), radius=RADIUS)
    for i, pair in enumerate(inputs or []):
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"inputs[{i}] must be an (x, y) pair of [P, d] tensors")
        x = check_points(pair[0], f"inputs[{i}][0]", dim=d).to(torch.float64)
        y = check_points(pair[1], f"inputs[{i}][1]", dim=d).to(torch.float64)
        if x.shape != y.shape or x.dim() != 2:
            raise ValueError(
                f"inputs[{i}] must hold two tensors of one shape [P, d], got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        families.append(InputFamily(f"inputs[{i}]", x, y))

    statistical = [c for c in ("unbiased", "variance") if c in claims]
    n_checks = len(statistical) * len(families) + sum(c in claims for c in ("positive", "finite"))
    a = alpha / n_checks
    report = Report("check_feature_map", alpha=alpha, budget=budget, seed=seed)

    x_all = torch.cat([f.x for f in families])
    y_all = torch.cat([f.y for f in families])
    sizes = [f.size for f in families]

    def estimates(gen: torch.Generator, r: int) -> torch.Tensor:
        rows = []
        with torch.no_grad():
            for _ in range(r):
                q, k = _split_sides(sample(gen))
                rows.append((_features(q, x_all, "query_fn") * _features(k, y_all, "key_fn")).sum(-1))
        return torch.stack(rows)

    if statistical:
        s = seed_for("draws", seed)
        kept: list[torch.Tensor] = []

        def recording(gen, r):
            out = estimates(gen, r)
            kept.append(out)
            return out

        mom = moments(recording, cfg["draws"], seed=s, block=cfg["block"])
        samples = torch.cat(kept)
        target = torch.cat([torch.diagonal(kernel(f.x, f.y)).to(torch.float64) for f in families])
        var = (
            None
            if variance is None
            else torch.cat([torch.diagonal(variance(f.x, f.y)).to(torch.float64) for f in families])
        )
        atol = rounding_floor(target, mom.mean)
        start = 0
        for f, size in zip(families, sizes, strict=True):
            sl = slice(start, start + size)
            start += size
            sub = mom.select(sl)
            if "unbiased" in claims:
                report.checks.append(
                    mean_check(
                        sub,
                        target[sl],
                        alpha=a,
                        name=f"unbiased[{f.name}]",
                        seed=s,
                        variance=None if var is None else var[sl],
                        samples=samples[:, sl],
                        atol=atol,
                    )
                )
            if "variance" in claims:
                report.checks.append(
                    variance_check(
                        sub, var[sl], alpha=a, name=f"variance[{f.name}]", seed=s, samples=samples[:, sl]
                    )
                )

    if {"positive", "finite"} & claims:
        s = seed_for("properties", seed)
        pts = torch.cat([extreme_points(d, torch.Generator().manual_seed(s)), x_all, y_all])
        gen = torch.Generator().manual_seed(s)
        feats = []
        with torch.no_grad():
            for _ in range(cfg["property_draws"]):
                q, k = _split_sides(sample(gen))
                feats += [_features(q, pts, "query_fn"), _features(k, pts, "key_fn")]
        allf = torch.cat([f.flatten() for f in feats])
        if "finite" in claims:
            bad = ~torch.isfinite(allf)
            report.checks.append(
                property_check(
                    int(bad.sum()),
                    allf.numel(),
                    claim="finite",
                    name="finite[norms ≤ 10]",
                    seed=s,
                    alpha=a,
                    example=_example(bad, feats, pts),
                )
            )
        if "positive" in claims:
            bad = ~(allf > 0)
            report.checks.append(
                property_check(
                    int(bad.sum()),
                    allf.numel(),
                    claim="positive",
                    name="positive[norms ≤ 10]",
                    seed=s,
                    alpha=a,
                    example=_example(bad, feats, pts),
                )
            )
    return report


def _example(bad: torch.Tensor, feats: list[torch.Tensor], pts: torch.Tensor) -> str:
    if not bool(bad.any()):
        return ""
    n_per = feats[0].numel()
    idx = int(torch.nonzero(bad)[0])
    which, off = divmod(idx, n_per)
    row = off // feats[0].shape[1]
    value = float(feats[which].flatten()[off])
    side = "query" if which % 2 == 0 else "key"
    return f"e.g. {side} feature {value:.4g} at an input of norm {float(pts[row].norm()):.4g} (draw {which // 2})"


def assert_feature_map(*args, **kwargs) -> Report:
    """:func:`check_feature_map`, raising ``AssertionError`` with the report when a claim fails."""
    report = check_feature_map(*args, **kwargs)
    if not report.passed:
        raise AssertionError(str(report))
    return report
