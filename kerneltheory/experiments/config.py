r"""Sweep configurations: one :class:`FigureConfig` per figure, read from and written to TOML (or JSON).

A figure sweeps one input parameter (its axis ``x``) over a list of values, for a list of :class:`Series`
(an estimator of the registry with its keyword arguments), and measures at every point the variance of one
draw's estimate φ(x)ᵀφ(y) from ``draws`` seeded draws, next to the closed forms of :mod:`kerneltheory.theory`.

A *point* is the set of input parameters

    dim d, num_features m (an integer or ``"dim"`` for m = d), norm ‖x‖, norm_ratio ‖y‖/‖x‖,
    angle ∠(x, y) in degrees, pairs P (the pairs (x_p, y_p) evaluated together: the sequence whose
    statistics data-dependent maps such as OPRF and SADERF use),

built as ``fixed`` ← the series' ``overrides`` ← {x: value}. Each scale (``quick``, ``full``) gives the
values, the number of draws R per point and the RNG block size (which fixes the random stream, see
:mod:`kerneltheory.montecarlo`).

The closed forms drawn beside a series are named in ``theory``:

* ``closed_form`` — the estimator's own closed-form variance (:meth:`RandomFeatureEstimator.variance_pairs`,
  iid laws only);
* ``iid`` — the closed form of the same component with iid Gaussian frequencies (the reference an orthogonal
  law is compared against);
* ``orf_bound`` — Performer Theorem 2's upper bound on the MSE of orthogonal positive features, m ≤ d
  (:func:`kerneltheory.theory.orf_positive_mse_bound`);
* ``orf_leading`` — Yu et al.'s leading-order ORF variance of unweighted trig features for the Gaussian kernel
  (:func:`kerneltheory.theory.orf_trig_variance_leading`).

The configurations shipped with the package are in :mod:`kerneltheory.experiments.defaults`; the files in
``experiments/configs/`` are written from them (``kerneltheory variance --write-configs``) and a test keeps the
two identical.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

AXES = ("num_features", "norm", "norm_ratio", "angle", "dim")
POINT_KEYS = ("dim", "num_features", "norm", "norm_ratio", "angle", "pairs")
THEORY = ("closed_form", "iid", "orf_bound", "orf_leading")
SCALES = ("quick", "full")
Y_KINDS = ("variance", "relative_variance")
XSCALES = ("log", "linear")


def _check_keys(d: Mapping, allowed, required, where: str) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a table (mapping), got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(set(required) - set(d))
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")


def _scalar(value, where: str):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where} must be a number or a string, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be finite, got {value}")
    return value


def check_point(point: Mapping, where: str = "point") -> dict:
    """Validate a complete point (every key of :data:`POINT_KEYS`) and return it with ``num_features`` resolved."""
    _check_keys(point, POINT_KEYS, POINT_KEYS, where)
    p = dict(point)
    if isinstance(p["dim"], bool) or not isinstance(p["dim"], int) or p["dim"] < 1:
        raise ValueError(f"{where}: dim must be an integer >= 1, got {p['dim']!r}")
    if p["num_features"] == "dim":
        p["num_features"] = p["dim"]
    m = p["num_features"]
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f'{where}: num_features must be an integer >= 1 or "dim", got {m!r}')
    if isinstance(p["pairs"], bool) or not isinstance(p["pairs"], int) or p["pairs"] < 1:
        raise ValueError(f"{where}: pairs must be an integer >= 1, got {p['pairs']!r}")
    for key in ("norm", "norm_ratio", "angle"):
        v = p[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}: {key} must be a finite number, got {v!r}")
        p[key] = float(v)
    if p["norm"] < 0 or p["norm_ratio"] < 0:
        raise ValueError(f"{where}: norm and norm_ratio must be >= 0, got {p['norm']} and {p['norm_ratio']}")
    if not 0.0 <= p["angle"] <= 180.0:
        raise ValueError(f"{where}: angle must be in [0, 180] degrees, got {p['angle']}")
    if p["dim"] == 1 and p["angle"] not in (0.0, 180.0):
        raise ValueError(f"{where}: in dim 1 the angle must be 0 or 180 degrees, got {p['angle']}")
    return p


@dataclass(frozen=True)
class Series:
    """One curve of a figure: an estimator (registry name or alias), its arguments and its closed forms.

    Attributes:
        estimator: registry name, e.g. ``"positive/orthogonal"``.
        label: legend entry (the colour); ``panel`` is the facet (column) the curve is drawn in.
        kwargs: keyword arguments of :func:`kerneltheory.estimators.get` (law or component arguments).
        overrides: point parameters that differ from the figure's ``fixed`` ones for this series.
        perturb: for learnable laws, add ``perturb``·N(0, 1) to every parameter (a seeded stand-in for trained
            parameters); 0 keeps the initialisation.
        init_seed: seed of the initial parameters of learnable laws.
        theory: closed forms drawn beside the measurement (names in :data:`THEORY`).
    """

    estimator: str
    label: str
    panel: str = ""
    kwargs: Mapping = field(default_factory=dict)
    overrides: Mapping = field(default_factory=dict)
    perturb: float = 0.0
    init_seed: int = 0
    theory: tuple[str, ...] = ("closed_form",)

    def __post_init__(self) -> None:
        if not isinstance(self.estimator, str) or not self.estimator:
            raise ValueError(f"series estimator must be a registry name, got {self.estimator!r}")
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"series {self.estimator}: label must be a non-empty string")
        object.__setattr__(
            self,
            "kwargs",
            {k: _kwarg(v, f"{self.estimator} kwargs.{k}") for k, v in dict(self.kwargs).items()},
        )
        bad = sorted(set(self.overrides) - set(POINT_KEYS))
        if bad:
            raise ValueError(f"series {self.label!r}: unknown override(s) {bad}; allowed: {list(POINT_KEYS)}")
        object.__setattr__(
            self,
            "overrides",
            {k: _scalar(v, f"series {self.label!r} overrides.{k}") for k, v in dict(self.overrides).items()},
        )
        if isinstance(self.perturb, bool) or not isinstance(self.perturb, (int, float)) or self.perturb < 0:
            raise ValueError(f"series {self.label!r}: perturb must be a number >= 0, got {self.perturb!r}")
        object.__setattr__(self, "perturb", float(self.perturb))
        if isinstance(self.init_seed, bool) or not isinstance(self.init_seed, int) or self.init_seed < 0:
            raise ValueError(
                f"series {self.label!r}: init_seed must be an integer >= 0, got {self.init_seed!r}"
            )
        theory = tuple(self.theory)
        bad = sorted(set(theory) - set(THEORY))
        if bad:
            raise ValueError(f"series {self.label!r}: unknown theory {bad}; allowed: {list(THEORY)}")
        object.__setattr__(self, "theory", theory)

    def to_dict(self) -> dict:
        d: dict = {
            "estimator": self.estimator,
            "label": self.label,
            "panel": self.panel,
            "theory": list(self.theory),
        }
        if self.perturb:
            d["perturb"] = self.perturb
        if self.init_seed:
            d["init_seed"] = self.init_seed
        if self.kwargs:
            d["kwargs"] = dict(self.kwargs)
        if self.overrides:
            d["overrides"] = dict(self.overrides)
        return d

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "series") -> Series:
        _check_keys(
            d,
            ("estimator", "label", "panel", "kwargs", "overrides", "perturb", "init_seed", "theory"),
            ("estimator", "label"),
            where,
        )
        return cls(**{k: (tuple(v) if k == "theory" else v) for k, v in d.items()})


def _kwarg(value, where: str):
    if isinstance(value, (list, tuple)):
        return [_kwarg(v, where) for v in value]
    if isinstance(value, bool):
        return value
    return _scalar(value, where)


@dataclass(frozen=True)
class ScaleSpec:
    """The values of the axis, the draws R per point and the RNG block size at one scale."""

    values: tuple
    draws: int
    block: int = 1024

    def __post_init__(self) -> None:
        values = tuple(self.values)
        if not values:
            raise ValueError("scale values must be a non-empty list")
        object.__setattr__(self, "values", tuple(_scalar(v, "scale values") for v in values))
        if len(set(self.values)) != len(self.values):  # each point once: a repeat drew it twice, two rows
            raise ValueError(f"scale values must be distinct, got {list(self.values)}")
        for name in ("draws", "block"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (2 if name == "draws" else 1):
                raise ValueError(
                    f"scale {name} must be an integer >= {2 if name == 'draws' else 1}, got {v!r}"
                )

    def to_dict(self) -> dict:
        return {"values": list(self.values), "draws": self.draws, "block": self.block}


@dataclass(frozen=True)
class FigureConfig:
    """A figure: its axis, fixed point parameters, scales and series (see the module docstring)."""

    name: str
    title: str
    x: str
    fixed: Mapping
    scales: Mapping[str, ScaleSpec]
    series: tuple[Series, ...]
    seed: int = 0
    y: str = "variance"
    xscale: str = "log"
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").isalnum():
            raise ValueError(f"figure name must be letters, digits and underscores, got {self.name!r}")
        if self.x not in AXES:
            raise ValueError(f"figure {self.name}: x must be one of {list(AXES)}, got {self.x!r}")
        if self.y not in Y_KINDS:
            raise ValueError(f"figure {self.name}: y must be one of {list(Y_KINDS)}, got {self.y!r}")
        if self.xscale not in XSCALES:
            raise ValueError(
                f"figure {self.name}: xscale must be one of {list(XSCALES)}, got {self.xscale!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"figure {self.name}: seed must be an integer >= 0, got {self.seed!r}")
        fixed = {k: _scalar(v, f"figure {self.name} fixed.{k}") for k, v in dict(self.fixed).items()}
        _check_keys(fixed, POINT_KEYS, (), f"figure {self.name} fixed")
        object.__setattr__(self, "fixed", fixed)
        if not self.scales or set(self.scales) - set(SCALES):
            raise ValueError(
                f"figure {self.name}: scales must be a subset of {list(SCALES)}, got {list(self.scales)}"
            )
        object.__setattr__(self, "scales", dict(self.scales))
        series = tuple(self.series)
        if not series:
            raise ValueError(f"figure {self.name}: needs at least one series")
        keys = [(s.panel, s.label) for s in series]
        if len(set(keys)) != len(keys):
            raise ValueError(f"figure {self.name}: (panel, label) of the series must be unique, got {keys}")
        for s in series:
            if self.x in s.overrides:
                raise ValueError(f"figure {self.name}: series {s.label!r} overrides the axis {self.x!r}")
        object.__setattr__(self, "series", series)
        for scale in self.scales:  # every point must be complete and valid
            for s in series:
                for v in self.scales[scale].values:
                    self.point(s, v)

    def scale(self, scale: str) -> ScaleSpec:
        if scale not in self.scales:
            raise ValueError(f"figure {self.name}: scale must be one of {list(self.scales)}, got {scale!r}")
        return self.scales[scale]

    def point(self, series: Series, value) -> dict:
        """The point parameters of ``series`` at axis value ``value`` (``norm`` sets ‖x‖; ‖y‖ = ratio·‖x‖)."""
        p = {**self.fixed, **series.overrides, self.x: value}
        return check_point(p, f"figure {self.name}, series {series.label!r}, {self.x} = {value}")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "x": self.x,
            "y": self.y,
            "xscale": self.xscale,
            "seed": self.seed,
            "fixed": dict(self.fixed),
            "scales": {k: v.to_dict() for k, v in self.scales.items()},
            "series": [s.to_dict() for s in self.series],
        }

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "config") -> FigureConfig:
        _check_keys(
            d,
            ("name", "title", "description", "x", "y", "xscale", "seed", "fixed", "scales", "series"),
            ("name", "title", "x", "fixed", "scales", "series"),
            where,
        )
        scales = {}
        for k, v in d["scales"].items():
            _check_keys(v, ("values", "draws", "block"), ("values", "draws"), f"{where} scales.{k}")
            scales[k] = ScaleSpec(**v)
        series = tuple(Series.from_dict(s, f"{where} series[{i}]") for i, s in enumerate(d["series"]))
        rest = {k: d[k] for k in ("description", "y", "xscale", "seed") if k in d}
        return cls(
            name=d["name"], title=d["title"], x=d["x"], fixed=d["fixed"], scales=scales, series=series, **rest
        )


# -- files ----------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> FigureConfig:
    """Read one figure's configuration from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"path must be a .toml or .json file, got {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    return FigureConfig.from_dict(data, where=str(path))


def load_configs(paths) -> list[FigureConfig]:
    """Configurations from files and directories (every ``*.toml``/``*.json`` in a directory, sorted)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[FigureConfig] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted([*p.glob("*.toml"), *p.glob("*.json")])
            if not files:
                raise ValueError(f"no .toml or .json configuration in {p}")
            out += [load_config(f) for f in files]
        elif p.is_file():
            out.append(load_config(p))
        else:
            raise ValueError(f"no such configuration file or directory: {p}")
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"figure names must be unique, got {names}")
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        text = repr(v)
        return text if any(c in text for c in ".eE") else text + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_table(d: Mapping, prefix: str, lines: list[str]) -> None:
    for k, v in d.items():
        if not isinstance(v, Mapping) and not (isinstance(v, list) and v and isinstance(v[0], Mapping)):
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in d.items():
        if isinstance(v, Mapping):
            if not v or not all(isinstance(x, Mapping) for x in v.values()):  # a header only where needed
                lines += ["", f"[{prefix}{k}]"]
            _toml_table(v, f"{prefix}{k}.", lines)
    for k, v in d.items():
        if isinstance(v, list) and v and isinstance(v[0], Mapping):
            for item in v:
                lines += ["", f"[[{prefix}{k}]]"]
                _toml_table(item, f"{prefix}{k}.", lines)


def to_toml(config: FigureConfig) -> str:
    """The configuration as TOML text (``load_config`` reads it back to an equal configuration)."""
    lines = [
        f"# {config.title}",
        "# Written by `kerneltheory variance --write-configs`; edit a copy and pass it with --config.",
        "",
    ]
    _toml_table(config.to_dict(), "", lines)
    return "\n".join(lines) + "\n"
