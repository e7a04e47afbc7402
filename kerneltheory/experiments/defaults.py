r"""The figures shipped with the package: one :class:`FigureConfig` per variance figure.

Input norms stay where the positive features' fourth moment is moderate (‖x + y‖² ≲ 3 at the quick scale),
since their sample variance converges slowly from below for heavy (log-normal) tails (MATH.md §4); the full
scale goes further and shows that effect. ``experiments/configs/*.toml`` are written from these
(``kerneltheory variance --write-configs experiments/configs``).
"""

from __future__ import annotations

from .config import FigureConfig, ScaleSpec, Series

QUICK_DRAWS = 4096
FULL_DRAWS = 1_048_576
GERF = {"a": -0.1, "s": 1}
PAIR = {"dim": 16, "num_features": 16, "norm": 0.6, "norm_ratio": 1.0, "angle": 60.0, "pairs": 1}


def _iid_orth(component: str, panel: str, kwargs=None, theory_orth=("iid",)) -> list[Series]:
    kwargs = dict(kwargs or {})
    return [
        Series(f"{component}/gaussian", "iid", panel, kwargs=kwargs),
        Series(f"{component}/orthogonal", "orthogonal", panel, kwargs=kwargs, theory=tuple(theory_orth)),
    ]


def variance_vs_m() -> FigureConfig:
    series = [
        *_iid_orth("positive", "positive (SM)", theory_orth=("iid", "orf_bound")),
        *_iid_orth("hyperbolic", "hyperbolic (SM)"),
        *_iid_orth("trig", "trig (SM)"),
        *_iid_orth("trig_phase", "trig + phase (K₁)"),
        *_iid_orth("gerf", "GERF A=−0.1 (SM)", kwargs=GERF),
        Series("poisrf/poisson", "PoisRF λ=0.05", "DIRF (SM)", kwargs={"rate": 0.05}),
        Series("geomrf/geometric", "GeomRF p=0.95", "DIRF (SM)", kwargs={"p": 0.95}),
    ]
    return FigureConfig(
        name="variance_vs_m",
        title="Variance against the number of frequencies m, iid against orthogonal",
        description="d = 16, ‖x‖ = ‖y‖ = 0.6, ∠(x, y) = 60°. Every family of MATH.md §4; the closed form is "
        "the variance of m iid frequencies (1/m); orthogonal frequencies are drawn against it and, for positive "
        "features with m ≤ d, against Performer's Theorem 2 bound.",
        x="num_features",
        fixed=PAIR,
        scales={
            "quick": ScaleSpec((4, 8, 16, 32, 64), QUICK_DRAWS, 2048),
            "full": ScaleSpec((2, 4, 8, 16, 32, 64, 128, 256), FULL_DRAWS, 8192),
        },
        series=tuple(series),
    )


def _performer_series() -> list[Series]:
    out = []
    for law, panel in (("gaussian", "iid"), ("orthogonal", "orthogonal")):
        theory = ("closed_form",) if law == "gaussian" else ("iid",)
        for comp in ("trig", "positive", "hyperbolic"):
            out.append(Series(f"{comp}/{law}", comp, panel, theory=theory))
    return out


def variance_vs_norm() -> FigureConfig:
    return FigureConfig(
        name="variance_vs_norm",
        title="Variance against the input norm: trig, positive and hyperbolic features for SM",
        description="d = m = 16, ‖x‖ = ‖y‖, ∠(x, y) = 60° (Performer's comparison). The trig variance grows like "
        "exp(‖x‖² + ‖y‖²)·(1 − e^{−‖τ‖²})²/SM², the positive one like SM²·(e^{‖z‖²} − 1).",
        x="norm",
        fixed=PAIR,
        scales={
            "quick": ScaleSpec((0.125, 0.25, 0.5, 0.75, 1.0), QUICK_DRAWS, 2048),
            "full": ScaleSpec((0.0625, 0.125, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5), FULL_DRAWS, 8192),
        },
        series=tuple(_performer_series()),
    )


def variance_vs_angle() -> FigureConfig:
    return FigureConfig(
        name="variance_vs_angle",
        title="Variance against the angle between x and y: trig, positive and hyperbolic features for SM",
        description="d = m = 16, ‖x‖ = ‖y‖ = 0.75. As the angle grows SM(x, y) falls and the positive "
        "features' variance vanishes with it (it is 0 at 180°, where x + y = 0), while the trig variance does "
        "not: Performer's argument for positive features on small kernel values. The ends are left out: at 0° "
        "the trig estimate is constant (τ = 0), at 180° the positive one is (z = 0), both of variance 0.",
        x="angle",
        xscale="linear",
        fixed={**PAIR, "norm": 0.75},
        scales={
            "quick": ScaleSpec((10.0, 45.0, 90.0, 135.0, 170.0), QUICK_DRAWS, 2048),
            "full": ScaleSpec(
                (5.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0, 105.0, 120.0, 135.0, 150.0, 165.0, 175.0),
                FULL_DRAWS,
                8192,
            ),
        },
        series=tuple(_performer_series()),
    )


def variance_vs_dim() -> FigureConfig:
    gauss = {"weighted": False}
    series = [
        Series("trig/gaussian", "iid", "trig, Gaussian kernel K₁", kwargs=gauss, overrides={"norm": 1.0}),
        Series(
            "trig/orthogonal",
            "orthogonal",
            "trig, Gaussian kernel K₁",
            kwargs=gauss,
            overrides={"norm": 1.0},
            theory=("iid", "orf_leading"),
        ),
        Series("positive/gaussian", "iid", "positive, SM"),
        Series("positive/orthogonal", "orthogonal", "positive, SM", theory=("iid", "orf_bound")),
    ]
    return FigureConfig(
        name="variance_vs_dim",
        title="Variance against the dimension d with m = d: orthogonal against iid frequencies",
        description="m = d (one orthogonal block), ∠(x, y) = 60°; ‖x‖ = ‖y‖ = 1 for trig features of the Gaussian "
        "kernel (‖τ‖ = 1), 0.6 for positive features of SM. Orthogonal frequencies are drawn against the iid "
        "closed form, Yu et al.'s leading-order ORF variance (trig) and Performer's Theorem 2 bound (positive).",
        x="dim",
        fixed={**PAIR, "num_features": "dim"},
        scales={
            "quick": ScaleSpec((2, 4, 8, 16, 32), QUICK_DRAWS, 2048),
            "full": ScaleSpec((2, 4, 8, 16, 32, 64, 128), FULL_DRAWS, 4096),
        },
        series=tuple(series),
    )


def oprf_saderf() -> FigureConfig:
    series = []
    for panel, over in (("‖y‖ = ‖x‖", {}), ("‖y‖ = ‖x‖/4", {"norm_ratio": 0.25})):
        series += [
            Series("positive/gaussian", "positive (FAVOR+)", panel, overrides=over),
            Series("oprf/gaussian", "OPRF (FAVOR++)", panel, overrides=over),
            Series("saderf/gaussian", "SADERF (FAVOR#)", panel, overrides=over),
        ]
    return FigureConfig(
        name="oprf_saderf",
        title="OPRF and SADERF against positive features",
        description="d = m = 16, ∠(x, y) = 60°, a sequence of 8 pairs in random directions per point (OPRF's A* "
        "and SADERF's Ψ* are fitted to it). With unequal norms SADERF rescales queries and keys before OPRF.",
        x="norm",
        fixed={**PAIR, "pairs": 8},
        scales={
            "quick": ScaleSpec((0.25, 0.5, 0.75, 1.0, 1.25), QUICK_DRAWS, 2048),
            "full": ScaleSpec((0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0), FULL_DRAWS, 8192),
        },
        series=tuple(series),
    )


def learned_spectra() -> FigureConfig:
    mix = {"components": 3}
    series = []
    for est, panel in (("positive/mixture", "GMM-PRF"), ("trig/mixture", "GMM-RKS")):
        series += [
            Series(est, "initialisation", panel, kwargs=mix, init_seed=1),
            Series(est, "perturbed (σ = 0.3)", panel, kwargs=mix, init_seed=1, perturb=0.3),
        ]
    return FigureConfig(
        name="learned_spectra",
        title="Learned spectra: Gaussian-mixture frequencies at initialisation and at perturbed parameters",
        description="d = 16, ‖x‖ = ‖y‖ = 0.6, ∠(x, y) = 60°, 3 components. The perturbed parameters (every "
        "parameter + 0.3·N(0, 1), seeded) stand in for trained ones; the closed forms are those of the "
        "mixture's ψ and M (MATH.md §4).",
        x="num_features",
        fixed=PAIR,
        scales={
            "quick": ScaleSpec((4, 16, 64), QUICK_DRAWS, 2048),
            "full": ScaleSpec((2, 4, 8, 16, 32, 64, 128, 256), FULL_DRAWS, 8192),
        },
        series=tuple(series),
    )


def default_configs() -> list[FigureConfig]:
    """Every shipped figure, in report order."""
    return [
        variance_vs_m(),
        variance_vs_norm(),
        variance_vs_angle(),
        variance_vs_dim(),
        oprf_saderf(),
        learned_spectra(),
    ]
