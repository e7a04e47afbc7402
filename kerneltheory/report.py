"""The main job's report: the registry of estimators and the claim matrix (every estimator × claim verified).

Results are written atomically, one JSON file per estimator under ``<out>/matrix/``, keyed by the budget,
seed and package version, so an interrupted ``kerneltheory report`` resumes where it stopped and never
loses what it already computed. The tables are then written as Markdown (``report.md``) and JSON
(``report.json``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import __version__, estimators
from .io import write_json_atomic, write_text_atomic

REGISTRY_COLUMNS = ("estimator", "aliases", "target", "unbiased", "positive", "variance", "proofs")
CLAIMS = ("unbiased", "positive", "variance", "finite")


def markdown_table(rows: list[dict], columns) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _cache_path(out: Path, name: str) -> Path:
    return out / "matrix" / (name.replace("/", "__") + ".json")


def claim_matrix(
    out_dir: str | Path,
    *,
    names: list[str] | None = None,
    budget: str = "quick",
    seed: int = 0,
    alpha: float = 1e-6,
    progress: bool = True,
) -> list[dict]:
    """Verify every estimator in ``names`` (default: all), resuming from cached per-estimator results."""
    from .testing.matrix import MATRIX_DIM, MATRIX_FEATURES, verify_estimator

    out = Path(out_dir)
    names = estimators.list() if names is None else [estimators.resolve(n) for n in names]
    key = {"budget": budget, "seed": seed, "alpha": alpha, "version": __version__,
           "dim": MATRIX_DIM, "num_features": MATRIX_FEATURES}
    results = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names), desc="claim matrix", unit="estimator", file=sys.stderr)
    try:
        for name in names:
            path = _cache_path(out, name)
            cached = None
            if path.is_file():
                try:
                    cached = json.loads(path.read_text(encoding="utf-8"))
                except json.JSONDecodeError:
                    cached = None
            if cached is not None and cached.get("key") == key:
                results.append(cached)
            else:
                start = time.perf_counter()
                verdicts, report = verify_estimator(name, budget=budget, alpha=alpha, seed=seed)
                entry = {"key": key, "estimator": name, "passed": report.passed,
                         "seconds": round(time.perf_counter() - start, 3),
                         "verdicts": [v.as_dict() for v in verdicts]}
                write_json_atomic(path, entry)
                results.append(entry)
            if bar is not None:
                bar.set_postfix_str(name)
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return results


def _verdict_cell(v: dict) -> str:
    mark = v["verdict"]
    if mark in ("n/a",):
        return "n/a"
    p = v["p_value"]
    return f"{mark} (p={p:.2g}, effect {v['effect_size']:.2g})" if p == p else mark


def write_report(out_dir: str | Path, registry_rows: list[dict], matrix: list[dict] | None, *, budget: str,
                 seed: int, alpha: float, dim: int, num_features: int) -> dict:
    """Write ``report.md`` and ``report.json``; return their paths and the Markdown text."""
    out = Path(out_dir)
    parts = [
        "# kerneltheory report",
        "",
        f"kerneltheory {__version__}. {len(registry_rows)} estimators.",
        "",
    ]
    summary = None
    if matrix is not None:
        rows = []
        counts: dict[str, int] = {}
        findings = []
        for entry in matrix:
            by = {v["claim"]: v for v in entry["verdicts"]}
            rows.append({"estimator": entry["estimator"], **{c: _verdict_cell(by[c]) for c in CLAIMS}})
            for v in entry["verdicts"]:
                counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
                if v["verdict"] in ("FAILED", "refused", "refuted"):
                    findings.append(f"- **{entry['estimator']}**, {v['claim']} ({v['claimed']} claimed): "
                                    f"{v['verdict']} — {v['evidence']} (effect size {v['effect_size']:.3g}, "
                                    f"{v['method']})")
        failed = [e["estimator"] for e in matrix if not e["passed"]]
        summary = {"counts": counts, "failed_estimators": failed}
        parts += [
            "## Claim matrix",
            "",
            f"Every estimator × claim at the {budget} budget (d = 4, m = 16; seed {seed}; each estimator's "
            f"report has total false-failure rate α = {alpha:g}, split across its checks). Verdicts: "
            "`verified` (claimed, all checks passed), `FAILED` (claimed, rejected), `refused` (claimed, budget too "
            "small to test), `refuted` (not claimed, counterexample found), `not refuted` (not claimed, none "
            "found at this budget), `n/a` (no closed-form variance).",
            "",
            "Totals: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ".",
            "",
            "Estimators whose claimed properties did not all hold: " + (", ".join(failed) if failed else "none") + ".",
            "",
            markdown_table(rows, ("estimator", *CLAIMS)),
            "",
            "### Counterexamples and failures",
            "",
            *(findings or ["none"]),
            "",
        ]
    parts += [
        "## Registry",
        "",
        f"Built at d = {dim}, m = {num_features}. `unbiased`: exact / asymptotic / no; `variance`: closed form of "
        "one draw's variance.",
        "",
        markdown_table(registry_rows, REGISTRY_COLUMNS),
        "",
    ]
    text = "\n".join(parts)
    md = write_text_atomic(out / "report.md", text)
    js = write_json_atomic(out / "report.json", {
        "version": __version__, "budget": budget, "seed": seed, "alpha": alpha, "summary": summary,
        "registry": registry_rows, "matrix": matrix,
    })
    return {"markdown": md, "json": js, "text": text, "summary": summary}


def run_report(out_dir: str | Path = "report", *, budget: str = "quick", seed: int = 0, alpha: float = 1e-6,
               names: list[str] | None = None, matrix: bool = True, dim: int = 16, num_features: int = 64,
               progress: bool = True) -> dict:
    """The main job: registry + claim matrix, written under ``out_dir``."""
    rows = estimators.table(dim=dim, num_features=num_features)
    if names is not None:
        keep = {estimators.resolve(n) for n in names}
        rows = [r for r in rows if r["estimator"] in keep]
    mat = claim_matrix(out_dir, names=names, budget=budget, seed=seed, alpha=alpha, progress=progress) \
        if matrix else None
    return write_report(out_dir, rows, mat, budget=budget, seed=seed, alpha=alpha, dim=dim,
                        num_features=num_features)
