r"""Multi-head kernelized attention as a torch module (MATH.md §2, §3, §5).

For each head h, queries and keys are projected and scaled by d_h^{-1/4} (d_h = d_model / H), so that
exp(q̃ᵀk̃) = exp(qᵀk/√d_h): every feature map built for the softmax kernel then estimates the attention
kernel of a standard Transformer (MATH.md, notation). The head's output is linear attention
(:func:`kerneltheory.attention.linear_attention`, Katharopoulos et al. 2020, eq. (6)) with that head's map,
or softmax attention for ``kernel="softmax"``; the heads are concatenated and projected.

**One estimator per head.** ``kernel`` is any name of :func:`kerneltheory.estimators.get` (paper aliases
included: ``"Performer"``, ``"RFF"``, ``"GMM-RKS"``, ``"GMM-PRF"``, ``"FastFood-RKS"``, ``"FastFood-PRF"``,
``"Generative-RKS"``, ``"Generative-PRF"``, ``"elu+1"``, ``"feedforward"``, ``"hedgehog"``) or
``"softmax"``. The module builds H estimators, one per head, each with its own initial parameters (seeded
from ``seed`` and the head); their laws and components are registered in :attr:`laws` and
:attr:`components` (``nn.ModuleList``), so every learnable spectrum (a Gaussian mixture with C components
per head, Fastfood's S, G, B, the generator network θ) and every trainable map (feed-forward, Hedgehog) is a
registered parameter that trains, moves with ``.to()`` and survives ``state_dict``. (The alternative, laws
with a head batch dimension, would duplicate every law class; H estimators reuse them unchanged.)
Parameter-free laws (Performer's orthogonal law, RFF's Gaussian) draw their H frequency matrices in one
stacked ``[H, m, d_h]`` tensor and run one batched attention call; per-head trainable maps run one call per
head.

**Draws.** All randomness comes from CPU generators seeded from ``(seed, stream, index)``
(:func:`kerneltheory.nn._init.derive_seed`), never the global RNG. ``redraw``:

* ``"call"``: a new draw of the noise on every training forward (draw index = number of training calls);
* an int N: a new draw every N training calls (index = calls // N);
* ``"fixed"``: one draw (index 0) for training and evaluation alike.

With ``deterministic_eval=True`` (default) evaluation mode uses one frozen draw (its own stream, index 0),
so ``model.eval()`` outputs are reproducible; with ``False`` every evaluation call draws afresh. A "draw"
fixes the *noise* (ε, permutations, component choices); W itself is recomputed from the current parameters
on every call (W = μ_q + L_q ε, Fastfood's S H G Π H B, g_θ(ε)), so gradients reach the spectrum and a
frozen draw follows the learned law. The draw state (seed, number of training and evaluation calls) is saved
in the ``state_dict`` (``_extra_state``): a loaded model continues the same sequence of draws.

**Gradients of learnable laws** (reparameterisation): the mixture's means and Cholesky factors receive
gradients through W = μ_q + L_q ε; its weights (logits) pick the component q, a discrete choice, so they get
*no* gradient through attention (only through the closed-form kernel, e.g. a kernel-fitting loss on
``law.char_fn``/``law.mgf``). Fastfood's S, G, B and the generator's θ get gradients through W.

**Denominators.** Positive maps use the legal log-space stabiliser (``stabilise=True``) and the denominator
check of :func:`linear_attention`: with it a positive map's denominator is ≥ 1. Signed maps (RKS/RFF, trig)
can have vanishing or negative denominators (MATH.md §5); they run with ``check_denominator=False`` and
``eps`` (default 1e-6, in the stabilised units) added to the denominator, a guard that biases attention
slightly and does not prevent large outputs where the denominator is near 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .. import estimators as E
from .._validation import check_device, check_dtype, check_int, check_points, check_real, representable
from ..attention import linear_attention, softmax_attention
from ..estimators import RandomFeatureEstimator
from ..features.base import FeatureMap, draw_feature_map
from . import _init

__all__ = ["KernelizedAttention", "HeadMaps"]

_TRAIN, _EVAL, _INIT = 1, 2, 3  # seed streams


class HeadMaps:
    """The feature maps of one draw for all H heads: ``stacked`` (one map whose W is ``[H, m, d_h]``, or a
    parameter-free deterministic map shared by the heads) or ``per_head`` (one map per head)."""

    def __init__(self, per_head: list[FeatureMap], stacked: FeatureMap | None):
        self.per_head = per_head
        self.stacked = stacked

    def __len__(self) -> int:
        return len(self.per_head)

    def __iter__(self) -> Iterator[FeatureMap]:
        return iter(self.per_head)


class KernelizedAttention(nn.Module):
    """Multi-head attention whose per-head kernel is ``kernel`` (a registry name or ``"softmax"``).

    ``forward(x, mask=None)``: ``x`` ``[B, n, d_model]``, ``mask`` a boolean key mask ``[B, n]`` (True =
    keep); returns ``[B, n, d_model]``. ``num_features`` is m, the number of frequencies per head (default
    d_h; ignored by ``"softmax"``, which is exact, and by deterministic maps, so that one configuration serves every
    kernel of a comparison). ``kernel_kw`` go to :func:`kerneltheory.estimators.get` (e.g.
    ``components=2`` for the mixture, ``hidden=32`` for the generator, ``feature_dim=`` for feed-forward).
    ``nonfinite``: ``"raise"`` (default) raises ValueError naming x when the output is not finite (a signed
    map's denominator can vanish, MATH.md §5); ``"allow"`` returns it as computed, for a training loop that
    counts and skips such steps.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        kernel: str = "softmax",
        num_features: int | None = None,
        *,
        redraw: str | int = "call",
        deterministic_eval: bool = True,
        causal: bool = False,
        seed: int = 0,
        eps: float | None = None,
        nonfinite: str = "raise",
        dtype: torch.dtype = torch.float32,
        device=None,
        **kernel_kw,
    ):
        super().__init__()
        if nonfinite not in ("raise", "allow"):
            raise ValueError(f"nonfinite must be 'raise' or 'allow', got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.d_model = check_int(d_model, "d_model", minimum=1)
        self.num_heads = check_int(num_heads, "num_heads", minimum=1)
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.head_dim = self.d_model // self.num_heads
        if redraw not in ("call", "fixed") and (isinstance(redraw, bool) or not isinstance(redraw, int)):
            raise ValueError(f"redraw must be 'call', 'fixed' or a positive int N, got {redraw!r}")
        if isinstance(redraw, int):
            check_int(redraw, "redraw", minimum=1)
        for name, flag in (("deterministic_eval", deterministic_eval), ("causal", causal)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        self.redraw, self.deterministic_eval, self.causal = redraw, deterministic_eval, causal
        self.seed = check_int(seed, "seed", minimum=0)
        self._calls = 0
        self._eval_calls = 0
        if not isinstance(kernel, str):
            raise TypeError(f"kernel must be a string, got {type(kernel).__name__}")
        self.kernel = kernel
        gen = _init.generator(self.seed, _INIT)
        kw = {"dtype": check_dtype(dtype), "device": check_device(device)}
        self.q_proj = _init.linear(self.d_model, self.d_model, gen, **kw)
        self.k_proj = _init.linear(self.d_model, self.d_model, gen, **kw)
        self.v_proj = _init.linear(self.d_model, self.d_model, gen, **kw)
        self.out_proj = _init.linear(self.d_model, self.d_model, gen, **kw)

        self.estimators: list[RandomFeatureEstimator] = []
        self.laws = nn.ModuleList()
        self.components = nn.ModuleList()
        if kernel == "softmax":
            if kernel_kw:
                raise TypeError(f"softmax attention takes no kernel arguments, got {sorted(kernel_kw)}")
            self.num_features, self.positive = None, True
        else:
            m = self.head_dim if num_features is None else check_int(num_features, "num_features", minimum=1)
            for h in range(self.num_heads):
                est = E.get(
                    kernel,
                    self.head_dim,
                    m,
                    init_seed=_init.derive_seed(self.seed, _INIT, h) % 2**31,
                    **kw,
                    **kernel_kw,
                )
                self.estimators.append(est)
                if est.law is not None:
                    self.laws.append(est.law)
                self.components.append(est.component)
            self.num_features = m
            self.positive = bool(self.estimators[0].claims.positive)
        default_eps = 0.0 if self.positive else 1e-6
        self.eps = default_eps if eps is None else check_real(eps, "eps", minimum=0.0)

    # -- state ------------------------------------------------------------------------------------
    def get_extra_state(self) -> dict:
        return {"seed": self.seed, "calls": self._calls, "eval_calls": self._eval_calls}

    def set_extra_state(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self._calls = int(state["calls"])
        self._eval_calls = int(state["eval_calls"])

    @property
    def learnable(self) -> bool:
        """Whether the kernel itself has trainable parameters (a learnable law or a trainable map)."""
        return any(p.requires_grad for m in (*self.laws, *self.components) for p in m.parameters())

    @property
    def feature_dim(self) -> int | None:
        return None if not self.estimators else self.estimators[0].feature_dim

    # -- draws ------------------------------------------------------------------------------------
    def _next_key(self) -> tuple[int, int]:
        """(stream, index) of the draw this forward call uses; advances the call counters."""
        if self.redraw == "fixed":
            return _TRAIN, 0
        if not self.training:
            if self.deterministic_eval:
                return _EVAL, 0
            self._eval_calls += 1
            return _EVAL, self._eval_calls
        index = self._calls if self.redraw == "call" else self._calls // self.redraw
        self._calls += 1
        return _TRAIN, index

    def draw(self, stream: int = _EVAL, index: int = 0) -> HeadMaps:
        """The feature maps of draw ``(stream, index)`` with the current parameters (``draw()`` is the frozen
        evaluation draw). Randomness: one CPU generator seeded from (seed, stream, index), heads in order."""
        if not self.estimators:
            raise ValueError("softmax attention has no feature maps")
        dtype, device = self.q_proj.weight.dtype, self.q_proj.weight.device
        gen = _init.generator(self.seed, stream, index)
        maps = [
            draw_feature_map(
                e.component, e.law, self.num_features, gen, dim=self.head_dim, dtype=dtype, device=device
            )
            for e in self.estimators
        ]
        first = maps[0]
        comp = first.component
        has_params = any(True for _ in comp.parameters())
        stacked = None
        if not comp.data_dependent and not has_params and not first.extra:
            if first.w is None:
                stacked = FeatureMap(comp, None, dim=self.head_dim, num_features=self.num_features)
            else:
                w = torch.stack([fm.w for fm in maps])  # [H, m, d_h] broadcasts against [B, H, n, d_h]
                stacked = FeatureMap(comp, w, dim=self.head_dim, num_features=self.num_features)
        return HeadMaps(maps, stacked)

    # -- forward ----------------------------------------------------------------------------------
    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as ``[B, H, n, d_h]``; q and k scaled by d_h^{-1/4} for kernel attention (not softmax,
        whose own 1/√d_h scale is applied inside :func:`softmax_attention`)."""
        check_points(x, "x")
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape [batch, n, d_model={self.d_model}], got {tuple(x.shape)}")
        b, n, _ = x.shape
        if n == 0:
            raise ValueError("x must have at least one position (n >= 1): attention over no key is undefined")
        w = self.q_proj.weight
        if x.dtype != w.dtype or x.device != w.device:
            raise ValueError(
                f"x must match the module's dtype and device ({w.dtype}, {w.device}), got ({x.dtype}, {x.device})"
            )

        def heads(t):
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        representable((q, k, v), "the projections q, k, v of x", {"x": x})
        if self.estimators:
            s = self.head_dim**-0.25
            q, k = q * s, k * s
        return q, k, v

    def attend(self, q, k, v, mask=None, maps: HeadMaps | None = None) -> torch.Tensor:
        """Per-head attention on projected ``[B, H, n, d_h]`` inputs with the given draw (or the next one)."""
        if not self.estimators:
            return softmax_attention(q, k, v, causal=self.causal, mask=mask)
        if maps is None:
            maps = self.draw(*self._next_key())
        kw = {
            "causal": self.causal,
            "mask": mask,
            "eps": self.eps,
            "check_denominator": self.positive,
        }
        if maps.stacked is not None:
            return linear_attention(q, k, v, maps.stacked, **kw)
        outs = [linear_attention(q[:, h], k[:, h], v[:, h], fm, **kw) for h, fm in enumerate(maps.per_head)]
        return torch.stack(outs, dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.project(x)
        try:
            out = self.attend(q, k, v, mask)
        except ValueError as err:  # q, k, v are internal: name the module's argument
            raise ValueError(f"attention over the projections q, k, v of x failed: {err}") from err
        b, _, n, _ = out.shape
        out = self.out_proj(out.transpose(1, 2).reshape(b, n, self.d_model))
        if self.nonfinite == "raise" and not bool(torch.isfinite(out).all()):
            raise ValueError(
                f"the attention output is not finite at these inputs x (the {self.kernel} map's denominator "
                "vanished or overflowed; a signed map's can be 0, MATH.md §5); nonfinite='allow' returns it"
            )
        return out

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, num_heads={self.num_heads}, kernel={self.kernel!r}, "
            f"num_features={self.num_features}, redraw={self.redraw!r}, "
            f"deterministic_eval={self.deterministic_eval}, causal={self.causal}"
        )
