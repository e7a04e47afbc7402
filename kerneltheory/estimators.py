"""Estimators: a frequency law × a component function, their target kernel, their claims, and the registry.

An estimator ``"<component>/<law>"`` draws feature maps (``.draw(generator)``), knows the kernel it estimates
(``.kernel(x, y)``, derived from the law's closed forms by the component: MATH.md §1, proofs/one_rule.md),
its closed-form variance where one exists (``.variance(x, y)``, from :mod:`kerneltheory.theory`), and its
:class:`Claims`, each backed by a proof file. The registry lists every meaningful pair::

    >>> import kerneltheory.estimators as E
    >>> est = E.get("positive/orthogonal", dim=16, num_features=64)
    >>> est.claims.unbiased, est.claims.positive
    ('exact', True)
    >>> E.get("GMM-PRF", dim=16, num_features=64).name
    'positive/mixture'

A law without closed forms (generative, learnable Fastfood) gives a Monte Carlo reference instead
(``.reference_kernel``), with its standard error (proofs/monte_carlo_reference.md).
"""

from __future__ import annotations

import builtins
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from ._validation import (
    NotRepresentableError,
    check_device,
    check_dtype,
    check_generator,
    check_int,
    check_points,
    check_same_dim,
    overflow_message,
    representable,
)
from .features import COMPONENTS
from .features.base import Component, FeatureMap, IncompatibleLaw, draw_feature_map
from .spectral import LAWS
from .spectral.base import ClosedFormUnavailable, SpectralLaw

Unbiased = Literal["exact", "asymptotic", "no"]
CLAIM_NAMES = ("unbiased", "positive", "variance", "finite")


@dataclass(frozen=True)
class Claims:
    """What the theory says about an estimator, each claim with the proof that backs it.

    Attributes:
        unbiased: ``"exact"`` (E φ(x)ᵀφ(y) equals the target for every input), ``"asymptotic"`` (the bias
            vanishes as m → ∞) or ``"no"`` (a bias that does not vanish with m: the claim of exactness is false).
        positive: every feature strictly positive for every finite input.
        variance: a closed-form variance of one draw exists (:meth:`RandomFeatureEstimator.variance`).
        finite: features are finite for inputs of norm up to 10 (checked, for every estimator).
        proofs: claim name → proof file (``proofs/*.md``).
        notes: claim name → a sentence on scope or caveats.
    """

    unbiased: Unbiased
    positive: bool
    variance: bool
    finite: bool = True
    proofs: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

    def asserted(self) -> set[str]:
        """The claims asserted to hold exactly (the set ``check_feature_map`` verifies)."""
        out = {"finite"} if self.finite else set()
        if self.unbiased == "exact":
            out.add("unbiased")
        if self.positive:
            out.add("positive")
        if self.variance:
            out.add("variance")
        return out


class RandomFeatureEstimator:
    """A component × law pair with m frequencies in dimension d."""

    def __init__(
        self,
        name: str,
        component: Component,
        law: SpectralLaw | None,
        *,
        dim: int,
        num_features: int,
        dtype: torch.dtype = torch.float64,
        device=None,
        aliases: tuple[str, ...] = (),
    ):
        if not isinstance(component, Component):
            got = f"the class {component.__name__} (call it)" if isinstance(component, type) else \
                type(component).__name__
            raise TypeError(f"component must be a Component instance (e.g. Positive()), got {got}")
        if law is not None and not isinstance(law, SpectralLaw):
            hint = f" {law!r} (kerneltheory.estimators.get builds an estimator by name)" if isinstance(law, str) else ""
            raise TypeError(f"law must be a SpectralLaw instance or None (a deterministic map), got "
                            f"{type(law).__name__}{hint}")
        self.name = name
        self.component = component
        self.law = law
        self.dim = check_int(dim, "dim", minimum=1)
        if law is not None and law.dim != self.dim:
            raise ValueError(f"law is a law in dimension {law.dim}, but dim = {self.dim}")
        self.num_features = check_int(num_features, "num_features", minimum=1)
        self.dtype = check_dtype(dtype)
        self.device = check_device(device)
        self.aliases = aliases
        component.check_law(law)
        self.claims = self._derive_claims()

    # -- claims -----------------------------------------------------------------------------------
    def _derive_claims(self) -> Claims:
        comp, law = self.component, self.law
        proofs = dict(comp.proofs)
        notes: dict[str, str] = {}
        if law is None:
            unbiased: Unbiased = "exact"
            notes["unbiased"] = "deterministic map: the kernel is its own Gram matrix φ(x)ᵀφ(y)"
        elif law.reference is None:
            unbiased = "exact"
            proofs["unbiased"] = "proofs/monte_carlo_reference.md"
            notes["unbiased"] = "no closed form: the target is a Monte Carlo reference over the same law"
        else:
            unbiased = law.row_marginal
            if law.proof and unbiased != "exact":
                proofs["unbiased"] = law.proof
            elif law.proof:
                proofs["rows"] = law.proof
            if unbiased != "exact":
                notes["unbiased"] = f"the rows of the {law.name} law only approximate its reference law"
        positive = bool(comp.positive)
        if not positive:
            proofs.pop("positive", None)
        else:
            notes["positive"] = (
                "strictly positive in exact arithmetic and in log space (sign +1, finite log φ); the float32 "
                "value exp(log φ) underflows to 0 where log φ < log(finfo.tiny) ≈ −87, e.g. OPRF at ‖x‖ = 10"
            )
        bias = getattr(comp, "bias", None)  # a component biased whatever its law (PolySketch squares a sketch)
        if bias is not None and law is not None:
            unbiased = bias
            proofs["unbiased"] = comp.proofs["unbiased"]
        notes.update(getattr(law, "claim_notes", {}))
        notes.update(getattr(comp, "claim_notes", {}))
        variance = law is None or comp.has_variance(law)
        if not variance:
            proofs.pop("variance", None)
        elif law is not None and not law.iid_rows:  # the exact ORF variance (features/trig.py, positive.py)
            proofs["variance"] = "proofs/orthogonal_variance.md"
        proofs.setdefault("finite", "proofs/positivity.md")
        return Claims(unbiased=unbiased, positive=positive, variance=variance, proofs=proofs, notes=notes)

    # -- properties -------------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return self.component.feature_dim(self.num_features)

    @property
    def has_closed_form(self) -> bool:
        return self.law is None or self.law.reference is not None

    @property
    def own_target(self) -> str:
        """Why this estimator's unbiasedness target is its own output, or ``""`` where the target is a formula apart
        from the features. A law without a closed form (a learned Fastfood or generative law) defines its kernel
        through its draws only; :meth:`reference_kernel` evaluates them through the component's target formula
        (:attr:`formula_reference`), except for a data-dependent map (OPRF, SADERF), whose formula holds for
        Gaussian frequencies only, and whose reference is then its own average over other draws. A
        deterministic map whose kernel is its own Gram φ(x)ᵀφ(y) (elu + 1, a feedforward or Hedgehog map) is that
        kernel. A check against such a target cannot fail a map that is wrong the same way in every draw (a factor
        1.25 on the features passed it): the claim matrix reads its rows as ``n/a``, not ``verified``."""
        if self.law is not None and self.law.reference is None and not self.formula_reference:
            why = ("its target formula holds for Gaussian frequencies only (its data-dependent A* cancels there alone)"
                   if self.component.data_dependent else
                   "its target is not written in the law's transforms, so the law's frequencies cannot be taken "
                   "through it")
            return (f"the {self.law.name} law has no closed form, and for the {self.component.name} map {why}: the "
                    "target is this estimator's own average over other draws, which a map wrong the same way in "
                    "every draw matches, so no check can verify the claim; its rows test that the draws agree from "
                    "seed to seed and stay finite")
        if self.law is None and getattr(self.component, "own_gram_target", False):
            return ("the map is deterministic and its target is its own Gram φ(x)ᵀφ(y): the claim holds by "
                    "definition and no check can fail it")
        return ""

    @property
    def target_name(self) -> str:
        if self.law is not None and self.law.reference is None:
            return "Monte Carlo reference over the law"
        return self.component.target_name(None if self.law is None else self.law.reference)

    # -- drawing ----------------------------------------------------------------------------------
    def draw(self, generator: torch.Generator, batch: int | None = None) -> FeatureMap:
        """One draw (or ``batch`` independent draws, W of shape ``[batch, m, d]``) of the feature map."""
        check_generator(generator)
        return draw_feature_map(
            self.component,
            self.law,
            self.num_features,
            generator,
            batch,
            dim=self.dim,
            dtype=self.dtype,
            device=self.device,
        )

    def sample_estimates(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator,
        draws: int,
        *,
        chunk_bytes: int | None = None,
        compute_dtype: torch.dtype | None = None,
        segments: Sequence[int] | None = None,
        statistics: Sequence[Mapping] | None = None,
    ):
        """``[draws, P]`` estimates φ(x_p)ᵀφ(y_p) for the P pairs (x_p, y_p) of ``draws`` independent draws.

        All ``draws`` frequency matrices are drawn first, in one call (the random stream is that of
        ``self.draw(generator, batch=draws)``); the estimates are then evaluated (``Component.pair_estimates``:
        the dot product of the features, or a cheaper equal expression) in chunks of c draws × q pairs whose
        ``[c, q, W]`` work tensor fits ``chunk_bytes`` (W = ``Component.pair_width``, by default the feature
        dimension D; all P pairs and as many draws as fit when one
        draw's features fit, else one draw and as many pairs as fit), so that the elementwise work stays in
        cache however large ``draws`` and P are (default 2¹⁹ bytes on the CPU; 2²⁷ on other devices, where a chunk
        costs kernel launches rather than cache misses). Every pair's features depend only on that pair, W and the
        sequence statistics, so the chunking changes the result at most by floating-point reassociation in
        the batched products (on the CPU it is bitwise the same in practice). The inputs are validated once
        per call, not once per chunk. For data-dependent maps the statistics are those of the sequences x and y,
        or, with ``segments`` (pair counts summing to P), those of each stretch of consecutive pairs alone: one
        draw of W serves every stretch, each fitted to its own pairs as if it were its own sequence (the claim
        matrix fits OPRF/SADERF to each input family this way). Maps that are not data-dependent ignore it.
        ``statistics``: those fits, as :meth:`fit_statistics` returns them for the same x, y and ``segments``,
        so that repeated calls on one set of pairs fit them once.

        ``compute_dtype=torch.float32``: evaluate the features in float32 where :attr:`float32_allowed` (W is
        drawn as usual, so the random stream is unchanged, then rounded), multiply in float32 and accumulate
        each estimate's sum over the D features in float64; the result is float64. A chunk with an estimate
        that is not finite or below 2⁻¹⁰⁰ (overflow, or terms near float32's underflow) is recomputed in the
        estimator's dtype. Where float32 is not allowed the estimator's dtype is used (see
        :attr:`float32_allowed`). None (default): the estimator's dtype throughout.
        """
        x, y = self._check_pairs(x, y)
        if x.shape[0] == 0:
            raise ValueError("x and y must hold at least one pair (P >= 1), got P = 0")
        r = check_int(draws, "draws", minimum=1)
        if chunk_bytes is None:
            chunk_bytes = 2**19 if x.device.type == "cpu" else 2**27
        chunk_bytes = check_int(chunk_bytes, "chunk_bytes", minimum=1)
        if compute_dtype not in (None, torch.float32, torch.float64):
            raise ValueError(
                f"compute_dtype must be None, torch.float32 or torch.float64, got {compute_dtype!r}"
            )
        low = self.evaluation_dtype(x.dtype, compute_dtype) != x.dtype
        stretches = pair_segments(segments, x.shape[0])
        fm = self.draw(generator, batch=r)
        comp = self.component
        if fm.w is None:  # deterministic maps carry no draw dimension: one evaluation serves every draw
            fx, fy = fm.pair(x, y)
            return torch.linalg.vecdot(fx, fy).expand(r, x.shape[0])
        if not comp.data_dependent:
            stretches = [(0, x.shape[0])]
        if statistics is None or not comp.data_dependent:
            statistics = self.fit_statistics(x, y, segments)
        elif isinstance(statistics, Mapping) or len(statistics) != len(stretches):
            raise ValueError(f"statistics must hold one fit per stretch of segments ({len(stretches)}), as "
                             "fit_statistics(x, y, segments) returns them")
        fitted = [(a, b, st) for (a, b), st in zip(stretches, statistics, strict=True)]
        per_pair = len(fitted) > 1 and comp.pairwise_statistics
        if per_pair:  # one evaluation of every stretch: each pair carries its own stretch's fit, [P, k]
            fitted = [(0, x.shape[0], {k: torch.cat([st[k].expand(b - a, -1) for a, b, st in fitted])
                                       for k in fitted[0][2]})]
        w = fm.w.to(device=x.device, dtype=x.dtype)
        # extra randomness carries the batch of draws first (Component.draw_extra), so it is sliced like W
        extra = {k: v.to(device=x.device, dtype=x.dtype) for k, v in fm.extra.items()}
        row = comp.pair_width(self.num_features) * x.element_size()  # bytes of one pair's features
        if low:
            f32 = {k: v.to(torch.float32) for k, v in extra.items()}
            low_args = (x.to(torch.float32), y.to(torch.float32), w.to(torch.float32), f32)
        blocks = []  # each stretch's [r, n] estimates (one stretch unless a data-dependent map is fitted per stretch)
        for start, stop, stats in fitted:
            q = min(stop - start, max(1, chunk_bytes // row))  # pairs per chunk
            c = max(1, chunk_bytes // (q * row))  # draws per chunk
            low_stats = _to_float32(stats) if low else None
            at = (lambda st, t, u: {k: v[t:u] for k, v in st.items()}) if per_pair else (lambda st, t, u: st)
            rows = []  # chunks are concatenated (not written into a buffer) so that gradients flow to W
            for s in range(0, r, c):
                wc, ec = w[s : s + c], {k: v[s : s + c] for k, v in extra.items()}
                cols = []
                for t in range(start, stop, q):
                    u = min(t + q, stop)
                    est = None
                    if low:
                        xl, yl, wl, el = low_args
                        el = {k: v[s : s + c] for k, v in el.items()}
                        fx = comp.features(xl[t:u], wl[s : s + c], el, at(low_stats, t, u), "query")
                        fy = comp.features(yl[t:u], wl[s : s + c], el, at(low_stats, t, u), "key")
                        est = (fx * fy).to(torch.float64).sum(-1)
                        # overflow or near-underflow in float32: this chunk in the estimator's dtype
                        if not bool((est >= 2.0**-100).all() & torch.isfinite(est).all()):
                            est = None
                    if est is None:
                        est = comp.pair_estimates(x[t:u], y[t:u], wc, ec, at(stats, t, u))
                    cols.append(est)
                rows.append(cols[0] if len(cols) == 1 else torch.cat(cols, dim=-1))
            blocks.append(rows[0] if len(rows) == 1 else torch.cat(rows))
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)

    def fit_statistics(self, x: torch.Tensor, y: torch.Tensor, segments: Sequence[int] | None = None
                       ) -> builtins.list[dict]:
        """The sequence statistics of a data-dependent map (OPRF's A*, SADERF's Ψ*, …), one fit per stretch of
        ``segments`` (:meth:`sample_estimates`), or ``[{}]`` for a map that is not data-dependent."""
        if not self.component.data_dependent:
            return [{}]
        return [self.component.statistics(x[a:b], y[a:b]) for a, b in pair_segments(segments, x.shape[0])]

    def evaluation_dtype(self, dtype: torch.dtype, compute_dtype: torch.dtype | None = None) -> torch.dtype:
        """The dtype :meth:`sample_estimates` evaluates the features of ``dtype`` inputs in: float32 for float64
        inputs when ``compute_dtype`` is float32 and :attr:`float32_allowed`, else ``dtype`` itself (the one
        rule, read also by the claim matrix for its rounding floors)."""
        low = compute_dtype == torch.float32 and dtype == torch.float64 and self.float32_allowed
        return torch.float32 if low else dtype

    @property
    def float32_allowed(self) -> bool:
        """Whether ``sample_estimates(..., compute_dtype=torch.float32)`` evaluates in float32: only for maps
        whose features are all positive (every estimate a sum of positive terms, so float32's relative rounding,
        about (D + d·|log φ|)·2⁻²⁴, stays relative: no cancellation). Signed maps (trig, DIRF, …) keep float64:
        an estimate of a small kernel value is a near-cancelling sum of O(1) terms, whose float32 rounding error
        (≈ D·2⁻²⁴ absolute) is not small against the value and its standard error at large draw counts.
        Laws without closed forms keep float64 too: their target is a float64 Monte Carlo reference of the same
        law, which the checks resolve more finely than float32's rounding (with float32 the unbiasedness checks of
        positive/, gerf/ and oprf/fastfood_learnable failed). The hyperbolic maps keep float64 for the same
        reason (their unbiasedness check failed in float32 for every law). Both found by
        tests/test_float32_estimates.py. Overflow of exponential features is handled per chunk (see
        :meth:`sample_estimates`)."""
        comp = self.component
        return bool(comp.positive) and self.has_closed_form and comp.name != "hyperbolic"

    # -- theory -----------------------------------------------------------------------------------
    def _check_xy(self, x, y):
        x = check_points(x, "x", dim=self.dim)
        y = check_points(y, "y", dim=self.dim)
        check_same_dim(x, y)
        if x.dtype != y.dtype:
            raise ValueError(f"x and y must share a dtype, got {x.dtype} and {y.dtype}")
        for name, t in (("x", x), ("y", y)):  # the closed forms evaluate ψ and M at 2(x ± y)
            limit = torch.finfo(t.dtype).max / 4
            if t.numel() and float(t.detach().abs().max()) > limit:
                raise ValueError(
                    f"{name} must have entries of magnitude <= finfo({t.dtype}).max / 4 = {limit:.4g} (the closed "
                    f"forms evaluate 2(x ± y)), got {float(t.abs().max()):.4g}"
                )
        return x, y

    def _check_pairs(self, x, y):
        x, y = self._check_xy(x, y)
        if x.dim() != 2 or x.shape != y.shape:
            raise ValueError(
                f"x and y must both have shape [P, d], got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        return x, y

    def _stats(self, x, y):
        return self.component.statistics(x, y) if self.component.data_dependent else {}

    def kernel(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The target kernel as a ``[..., n, n']`` Gram matrix, from the reference law's closed forms.

        Raises :class:`ClosedFormUnavailable` for laws without closed forms: use :meth:`reference_kernel`.
        """
        x, y = self._check_xy(x, y)
        if not self.has_closed_form:
            raise ClosedFormUnavailable(
                f"{self.name}: the {self.law.name} law has no closed form; use reference_kernel(x, y, ...)"
            )
        ref = None if self.law is None else self.law.reference
        return self._finite(lambda: self.component.target(ref, x, y, self._stats(x, y)), "kernel", x, y)

    def kernel_pairs(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The target kernel at the P pairs (x_p, y_p): ``[P]`` (sequence statistics from all of x and y)."""
        x, y = self._check_pairs(x, y)
        if not self.has_closed_form:
            raise ClosedFormUnavailable(f"{self.name} has no closed-form kernel; use reference_kernel")
        ref = None if self.law is None else self.law.reference
        out = self._finite(
            lambda: self.component.target(ref, x[:, None, :], y[:, None, :], self._stats(x, y)), "kernel", x, y
        )
        return out[:, 0, 0]

    def variance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Closed-form Var[φ(x)ᵀφ(y)] of one draw as a Gram matrix (iid laws with closed forms only)."""
        x, y = self._check_xy(x, y)
        if not self.claims.variance:
            raise ClosedFormUnavailable(f"{self.name} has no closed-form variance")
        if self.law is None:
            return torch.zeros(*x.shape[:-1], y.shape[-2], dtype=x.dtype, device=x.device)
        return self._finite(
            lambda: self.component.variance(self.law, x, y, self.num_features, self._stats(x, y)),
            "closed-form variance",
            x,
            y,
        )

    def variance_pairs(self, x: torch.Tensor, y: torch.Tensor, *, checked: bool = True) -> torch.Tensor:
        """Closed-form variance at the P pairs (x_p, y_p): ``[P]``. ``checked=False`` returns a value that is not
        finite as it is (the claim matrix tests it: a NaN claim fails at its pair) instead of the
        :class:`NotRepresentableError` that names an overflow."""
        x, y = self._check_pairs(x, y)
        if not self.claims.variance:
            raise ClosedFormUnavailable(f"{self.name} has no closed-form variance")
        if self.law is None:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

        def compute():
            out = self.component.variance(self.law, x[:, None, :], y[:, None, :], self.num_features,
                                          self._stats(x, y))
            if not isinstance(out, torch.Tensor) or out.dim() != 3 or out.shape[0] != x.shape[0]:
                raise ValueError(f"the closed-form variance of {self.name} ({type(self.component).__name__}"
                                 f".variance) must be a tensor [P, 1, 1] for pairs [P, 1, d], got "
                                 f"{tuple(getattr(out, 'shape', ())) or type(out).__name__}")
            return out

        out = self._finite(compute, "closed-form variance", x, y) if checked else compute()
        return out[:, 0, 0]

    def _finite(self, compute, what: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``compute()``, or a :class:`NotRepresentableError` (a ValueError) naming x and y and the dtype's
        range when the value (or a closed form inside it) overflowed to inf/NaN."""
        what = f"the {what} of {self.name}"
        try:
            out = compute()
        except NotRepresentableError as err:
            msg = overflow_message(what, x.dtype, {"x": x, "y": y})
            inner = str(err).split(" is not finite")[0]
            raise NotRepresentableError(f"{msg} (it overflowed in {inner})") from err
        representable(out, what, {"x": x, "y": y})
        return out

    @functools.cached_property
    def formula_reference(self) -> bool:
        """Whether :meth:`formula_estimates` works for this estimator: a law without closed forms whose component
        writes its target through the law's transforms (:class:`~kerneltheory.spectral.empirical.EmpiricalLaw`);
        tried once on a probe of two draws."""
        if self.law is None or self.law.reference is not None:
            return False
        if self.component.data_dependent:  # OPRF, SADERF: the target formula sets A = 0, which holds for Gaussian
            return False  # frequencies only (there E f₁f₂ does not depend on A; under a learned law it does)
        probe = torch.zeros(2, self.dim, dtype=self.dtype)
        probe[1, 0] = 0.25
        try:
            with torch.no_grad():
                out = self.formula_estimates(probe, probe.flip(0), torch.Generator().manual_seed(0), 2)
        except (ClosedFormUnavailable, AttributeError, TypeError, RuntimeError, ValueError):
            return False
        return tuple(out.shape) == (2, 2) and bool(torch.isfinite(out).all())

    def formula_estimates(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, draws: int):
        """``[draws, P]``: per draw of the law's frequencies, the component's target formula evaluated with the
        empirical law of that draw's m rows (:class:`~kerneltheory.spectral.empirical.EmpiricalLaw`), i.e.
        (1/m) Σ_i g(ω_i; x_p, y_p), the estimate a correct feature map gives for that draw, computed without the
        features. Its mean over draws is the law's kernel (proofs/monte_carlo_reference.md, item 6)."""
        from .spectral.empirical import EmpiricalLaw

        x, y = self._check_pairs(x, y)
        r = check_int(draws, "draws", minimum=1)
        with torch.no_grad():  # a learned law's parameters require gradients; nothing here differentiates
            w = self.law.sample(self.num_features, generator, batch=r).to(device=x.device, dtype=x.dtype)
            out = self.component.target(EmpiricalLaw(w), x[:, None, :], y[:, None, :], self._stats(x, y))
        return out[..., 0, 0]

    def reference_kernel(self, x: torch.Tensor, y: torch.Tensor, *, draws: int = 4096, seed: int = 2**31 - 1,
                         segments: Sequence[int] | None = None):
        """Monte Carlo reference at the P pairs: ``(mean, stderr)``, each ``[P]``, from ``draws`` draws.

        The default seed is kept apart from the seeds the checks use, so reference and test draws are
        independent. For laws with closed forms prefer :meth:`kernel_pairs`. Where :attr:`formula_reference`
        holds, the draws are :meth:`formula_estimates` (the law's frequencies through the component's target
        formula, not through the features, so a feature map wrong in every draw is not its own reference);
        otherwise they are :meth:`sample_estimates` (:attr:`own_target` says so), with ``segments`` as there.
        """
        from .montecarlo import moments

        x, y = self._check_pairs(x, y)
        if self.formula_reference:
            m = moments(lambda g, r: self.formula_estimates(x, y, g, r), draws, seed=seed)
        else:
            fitted = self.fit_statistics(x, y, segments)
            m = moments(lambda g, r: self.sample_estimates(x, y, g, r, segments=segments, statistics=fitted), draws,
                        seed=seed)
        return m.mean, m.stderr

    def describe(self) -> dict:
        """One row of the registry table."""
        c = self.claims
        return {
            "estimator": self.name,
            "aliases": ", ".join(self.aliases),
            "component": self.component.name,
            "law": "—" if self.law is None else self.law.name,
            "target": self.target_name,
            "unbiased": c.unbiased,
            "positive": c.positive,
            "variance": "closed form" if c.variance else "—",
            "proofs": "; ".join(f"{k}: {v}" for k, v in sorted(c.proofs.items())),
        }

    def __repr__(self) -> str:
        return f"RandomFeatureEstimator({self.name!r}, dim={self.dim}, num_features={self.num_features})"


# ---------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------

GRID_COMPONENTS = ("trig", "positive", "oprf", "saderf", "gerf", "hyperbolic", "trig_phase")
GRID_LAWS = (
    "gaussian",
    "orthogonal",
    "sorf",
    "qmc",
    "moment_matched",
    "gauss_hermite",
    "fastfood",
    "fastfood_learnable",
)
EXTRA_PAIRS = (
    ("trig", "mixture"),
    ("positive", "mixture"),
    ("hyperbolic", "mixture"),
    ("trig", "generative"),
    ("positive", "generative"),
    ("relu", "gaussian"),
    ("relu", "orthogonal"),
    ("poisrf", "poisson"),
    ("geomrf", "geometric"),
    ("positive", "simplex"),
    ("positive", "simplex_plus"),
    ("trig", "simplex"),
    ("sderf", "gaussian"),
    ("sderf", "orthogonal"),
    ("aderf", "gaussian"),
    ("aderf", "orthogonal"),
    ("hrf", "gaussian"),
    ("hrf", "orthogonal"),
    ("tensorsketch", "countsketch"),
    ("polysketch", "gaussian"),
)
# The parameters a registry name builds its component with, where the constructor's defaults would repeat another
# entry: GERF(A = 0, s = +1) is positive/<law> and GERF(A*, s = +1) is oprf/<law>, so gerf/<law> is the member no
# other entry covers, s = −1 (cos/sin pairs) with A ≠ 0. Arguments given to get() override them.
REGISTRY_PARAMETERS = {"gerf": {"a": -0.1, "s": -1}}
DETERMINISTIC = ("elu", "feedforward", "hedgehog", "based", "rebased")
ALIASES = {
    "GMM-RKS": "trig/mixture",
    "GMM-PRF": "positive/mixture",
    "FastFood-RKS": "trig/fastfood_learnable",
    "FastFood-PRF": "positive/fastfood_learnable",
    "Generative-RKS": "trig/generative",
    "Generative-PRF": "positive/generative",
    "RFF": "trig/gaussian",
    "RKS": "trig/gaussian",
    "ORF": "trig/orthogonal",
    "FAVOR+": "positive/orthogonal",
    "Performer": "positive/orthogonal",
    "FAVOR++": "oprf/orthogonal",
    "FAVOR#": "saderf/orthogonal",
    "PoisRF": "poisrf/poisson",
    "GeomRF": "geomrf/geometric",
    "elu+1": "elu",
    "SimRF": "positive/simplex",
    "SimRF+": "positive/simplex_plus",
    "SDERF": "sderf/orthogonal",
    "ADERF": "aderf/orthogonal",
    "HRF": "hrf/gaussian",
    "TensorSketch": "tensorsketch/countsketch",
    "PolySketch": "polysketch/gaussian",
    "Based": "based",
    "ReBased": "rebased",
}


def pair_segments(segments: Sequence[int] | None, num_pairs: int) -> builtins.list[tuple[int, int]]:
    """The stretches ``[(start, stop), ...]`` of ``segments`` (positive pair counts, in order, summing to
    ``num_pairs``), or the one stretch of all pairs where ``segments`` is None."""
    if segments is None:
        return [(0, num_pairs)]
    if isinstance(segments, str | bytes | torch.Tensor) or not isinstance(segments, Sequence):
        raise TypeError(f"segments must be a sequence of pair counts, got {type(segments).__name__}")
    counts = [check_int(n, f"segments[{i}]", minimum=1) for i, n in enumerate(segments)]
    if sum(counts) != num_pairs:
        raise ValueError(f"segments must sum to the number of pairs P = {num_pairs}, got {sum(counts)} ({counts})")
    bounds, start = [], 0
    for n in counts:
        bounds.append((start, start + n))
        start += n
    return bounds


def _to_float32(stats: Mapping) -> dict:
    """A data-dependent map's sequence statistics in float32 (floating tensors only)."""
    return {
        k: v.to(torch.float32) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in stats.items()
    }


def _names() -> builtins.list[str]:
    names = [f"{c}/{law}" for c in GRID_COMPONENTS for law in GRID_LAWS]
    names += [f"{c}/{law}" for c, law in EXTRA_PAIRS]
    names += list(DETERMINISTIC)
    return names


_REGISTERED = tuple(_names())


def list() -> builtins.list[str]:  # noqa: A001 - the public contract names it list()
    """Names of every registered estimator, ``"<component>/<law>"`` or a deterministic map's name."""
    return builtins.list(_REGISTERED)


def aliases() -> dict[str, str]:
    """Paper names → registry names."""
    return dict(ALIASES)


def resolve(name: str) -> str:
    """The registry name for ``name`` (an alias from the papers, any case, is accepted)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name in _REGISTERED:
        return name
    if name in ALIASES:
        return ALIASES[name]
    folded = {k.lower(): v for k, v in ALIASES.items()} | {k.lower(): k for k in _REGISTERED}
    if name.lower() in folded:
        return folded[name.lower()]
    raise ValueError(f"unknown estimator {name!r}; see kerneltheory.estimators.list() and aliases()")


def _accepts(cls, name: str) -> bool:
    return name in inspect.signature(cls.__init__).parameters


def _build(cls, kwargs: dict, provided: dict):
    """Instantiate ``cls`` with the arguments of ``provided`` its constructor accepts, plus ``kwargs``."""
    args = {k: v for k, v in provided.items() if _accepts(cls, k)}
    args.update(kwargs)
    return cls(**args)


def get(
    name: str, dim: int, num_features: int, *, dtype=torch.float64, device=None, init_seed: int = 0, **kw
):
    """Build the estimator ``name`` in dimension ``dim`` with ``num_features`` frequencies.

    Keyword arguments go to the law or the component, whichever constructor accepts them (e.g. ``std=0.5``
    for the law, ``h="gaussian"`` for positive features, ``a=-0.1, s=1`` for GERF); an argument neither
    accepts raises ``TypeError``. A registry name builds its component with :data:`REGISTRY_PARAMETERS` where
    the constructor's defaults would repeat another entry (``gerf/<law>`` is GERF(A = −0.1, s = −1)); arguments
    given here override them. ``init_seed`` seeds the initial parameters of learnable laws and maps.

    A meaningless pair (say ``"gerf/mixture"``) raises ``ValueError`` explaining why.
    """
    try:
        canonical = resolve(name)
    except ValueError:
        if "/" not in name and name not in COMPONENTS:
            raise
        canonical = name  # an unregistered pair: built if meaningful, refused with the reason otherwise
    dim = check_int(dim, "dim", minimum=1)
    m = check_int(num_features, "num_features", minimum=1)
    dtype = check_dtype(dtype)
    device = check_device(device)
    comp_name, _, law_name = canonical.partition("/")
    if comp_name not in COMPONENTS:
        raise ValueError(f"unknown component {comp_name!r}; components are {sorted(COMPONENTS)}")
    comp_cls = COMPONENTS[comp_name]
    law_cls = None
    if law_name:
        if law_name not in LAWS:
            raise ValueError(f"unknown law {law_name!r}; laws are {sorted(LAWS)}")
        law_cls = LAWS[law_name]
    provided = {
        "dim": dim,
        "num_features": m,
        "dtype": dtype,
        "device": device,
        "generator": torch.Generator().manual_seed(check_int(init_seed, "init_seed", minimum=0)),
    }
    law_kw, comp_kw = {}, dict(REGISTRY_PARAMETERS.get(comp_name, {}))
    for key, value in kw.items():
        if law_cls is not None and _accepts(law_cls, key):
            law_kw[key] = value
        elif _accepts(comp_cls, key):
            comp_kw[key] = value
        else:
            where = f"the {law_name} law or " if law_cls is not None else ""
            raise TypeError(f"{key!r} is not an argument of {where}the {comp_name} component")
    component = _build(comp_cls, comp_kw, provided)
    if law_cls is None and component.requires_law:
        raise IncompatibleLaw(f"the {comp_name} component needs a law: use '{comp_name}/<law>'")
    law = None if law_cls is None else _build(law_cls, law_kw, provided)
    alias_names = tuple(k for k, v in ALIASES.items() if v == canonical)
    return RandomFeatureEstimator(
        canonical, component, law, dim=dim, num_features=m, dtype=dtype, device=device, aliases=alias_names
    )


def table(dim: int = 16, num_features: int = 64) -> builtins.list[dict]:
    """The registry as rows (estimator, target, claims, proof files), built at ``dim``, ``num_features``."""
    return [get(name, dim, num_features).describe() for name in _REGISTERED]


Factory = Callable[..., RandomFeatureEstimator]
