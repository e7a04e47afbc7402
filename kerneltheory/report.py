"""The main job's report: the registry of estimators, the claim matrix (every estimator × claim verified), the
quick variance sweeps (every figure regenerated, empirical variance against closed form) and the attention error
theory's checks.

Results are written atomically, one JSON file per estimator under ``<out>/matrix/``, keyed by the budget,
seed, level, package version and a digest of the package's source, one per variance cell under
``<out>/variance/cells/`` (keyed by its specification and that digest) and the attention theory's rows in
``<out>/attention_theory.<settings>.json`` (the matrix's key less d and m), so an interrupted ``kerneltheory report``
resumes where it stopped and never loses what it already computed. The budget, seed and level are in the names of
the matrix's and the attention theory's files (``<estimator>.<budget>.seed-<seed>.alpha-<α>.json``): a run with
other settings into the same folder keeps the earlier run's results beside its own. The report is then written as
Markdown (``report.md``, figures linked), JSON (``report.json``) and a self-contained HTML page (``report.html``,
the same content with the figures embedded as base64 PNG).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
import time
from pathlib import Path

from . import __version__, estimators
from . import report_matrix as M
from .io import write_json_atomic, write_text_atomic

REGISTRY_COLUMNS = ("estimator", "aliases", "target", "unbiased", "positive", "variance", "proofs")
CLAIMS = M.CLAIMS


def markdown_table(rows: list[dict], columns) -> str:
    def cell(v) -> str:  # floats to 4 significant digits: the records keep the full numbers
        return (f"{v:.4g}" if isinstance(v, float) else str(v)).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def _settings(budget: str, seed: int, alpha: float) -> str:
    """The run's settings in a cache file's name: a run with other settings writes its own files beside these (a
    quick run into an --out holding a thorough one's results overwrote them). α is checked and spelled as a Python
    float (numpy's or torch's scalars of one level name one file)."""
    from ._validation import check_alpha

    return f"{budget}.seed-{int(seed)}.alpha-{check_alpha(alpha)!r}"


def _cache_path(out: Path, name: str, budget: str = "quick", seed: int = 0, alpha: float = 1e-6) -> Path:
    return out / "matrix" / f"{name.replace('/', '__')}.{_settings(budget, seed, alpha)}.json"


VERDICT_FIELDS = {"estimator": str, "claim": str, "claimed": str, "verdict": str, "p_value": float,
                  "effect_size": float, "method": str, "evidence": str, "proof": str, "checks": list}


def _duration_problem(seconds) -> str | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds < float("inf"):
        return f"impossible duration {seconds!r}"
    return None


def _records_problem(records, spec: dict, what: str) -> str | None:
    """Why ``records`` is not a non-empty list of dicts with exactly the fields of ``spec`` (field → type; float
    admits ints, no number admits bools), or None."""
    if not isinstance(records, list) or not records:
        return f"no {what}s"
    for record in records:
        if not isinstance(record, dict) or record.keys() != spec.keys():
            return f"a {what} of the wrong shape"
        for field, kind in spec.items():
            value = record[field]
            if kind is float:
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, kind)
            if not ok:
                return f"{what} field {field} is not {'a number' if kind is float else 'of type ' + kind.__name__}"
    return None


def _verdicts_problem(entry, name: str) -> str | None:
    """Why a cached claim-matrix entry is unusable (None if it is well formed)."""
    if not isinstance(entry, dict) or not {"key", "estimator", "passed", "seconds", "verdicts"} <= entry.keys():
        return "not a claim-matrix entry"
    if entry["estimator"] != name or not isinstance(entry["passed"], bool):
        return "another estimator's entry, or no pass/fail"
    problem = _duration_problem(entry["seconds"]) or _records_problem(entry["verdicts"], VERDICT_FIELDS, "verdict")
    if problem:
        return problem
    for v in entry["verdicts"]:
        if v["estimator"] != name or not (v["p_value"] != v["p_value"] or 0 <= v["p_value"] <= 1):
            return "a verdict of another estimator, or a p-value outside [0, 1]"
        if v["verdict"] not in M.VERDICTS:
            return f"a verdict {v['verdict']!r} that is none of {list(M.VERDICTS)}"
    if sorted(v["claim"] for v in entry["verdicts"]) != sorted(M.CLAIMS):
        return f"claims {sorted(v['claim'] for v in entry['verdicts'])}, not one verdict for each of {list(M.CLAIMS)}"
    return next(filter(None, map(_verdict_disagrees, entry["verdicts"])), None)


def _verdict_disagrees(v: dict) -> str | None:
    """Why a cached verdict is not the one its own checks give (None if it is; testing.matrix._verdict's rules): a
    failed row makes it FAILED or refuted, no failed row leaves it verified (every row passed), refused (a row
    undecided), not refuted, or n/a (no row, or every row passed against the estimator's own output). (A verdict
    edited to FAILED beside checks that all passed, its checksum recomputed, was reported.)"""
    from .testing.checks import CheckResult

    try:
        statuses = {CheckResult(**row).status for row in v["checks"]}
    except (TypeError, ValueError, AttributeError) as exc:
        return f"the {v['claim']} verdict: a check that is no check's record ({type(exc).__name__})"
    if "failed" in statuses:
        allowed = {"FAILED", "refuted"}
    elif not statuses:
        allowed = {"n/a"}
    else:
        allowed = {"not refuted"} | ({"verified", "n/a"} if statuses == {"passed"} else {"refused"})
    if v["verdict"] not in allowed:
        return f"the {v['claim']} verdict {v['verdict']!r} is not what its checks give ({sorted(allowed)})"
    return None


def _load_verdicts(path: Path, key: dict, name: str) -> dict | None:
    """The cached entry of ``name`` at ``path`` if it was computed with ``key`` and is well formed; a corrupt
    or tampered file (its checksum, :func:`~kerneltheory.experiments.study.write_checked_json`; a verdict that is
    none of the report's, a claim missing or repeated) is recomputed with a
    :class:`~kerneltheory.experiments.study.CacheWarning`. (An edited verdict, "FAILED" made "bogus", was read back
    and the report passed.)"""
    return _read_cached(path, key, lambda entry: _verdicts_problem(entry, name))


def _read_cached(path: Path, key: dict, problem) -> dict | None:
    """The checksummed entry at ``path`` (:func:`~kerneltheory.experiments.study.read_checked_json`) if it was
    computed under ``key`` and ``problem(entry)`` finds nothing wrong; None otherwise (recomputed): silently for
    another key (another budget, seed, level or source: nothing wrong with the file), with a
    :class:`~kerneltheory.experiments.study.CacheWarning` for a damaged or invalid file."""
    from .experiments.study import read_checked_json

    stale = []

    def validate(entry):
        if entry.get("key") != key:
            stale.append(True)
            return None
        return problem(entry)

    cached = read_checked_json(path, validate)
    return None if cached is None or stale else cached


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """A digest of the package's Python source: a cached verdict was computed by this very code only if it matches
    (the version alone does not change between commits of a checkout)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


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
    from .experiments.study import write_checked_json
    from .testing.matrix import MATRIX_DIM, MATRIX_FEATURES, verify_estimator

    out = Path(out_dir)
    names = estimators.list() if names is None else [estimators.resolve(n) for n in names]
    key = {"budget": budget, "seed": seed, "alpha": alpha, "version": __version__, "source": source_digest(),
           "dim": MATRIX_DIM, "num_features": MATRIX_FEATURES}
    results = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names), desc="claim matrix", unit="estimator", file=sys.stderr)
    try:
        for name in names:
            path = _cache_path(out, name, budget, seed, alpha)
            cached = _load_verdicts(path, key, name)
            if cached is not None:
                results.append(cached)
            else:
                start = time.perf_counter()
                verdicts, report = verify_estimator(name, budget=budget, alpha=alpha, seed=seed)
                entry = {"key": key, "estimator": name, "passed": report.passed,
                         "seconds": round(time.perf_counter() - start, 3),
                         "verdicts": [v.as_dict() for v in verdicts]}
                write_checked_json(path, entry)
                results.append(entry)
            if bar is not None:
                bar.set_postfix_str(name)
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return results


# the record of a CheckResult (CheckResult.as_dict) as the attention-theory cache stores it: field → type
ATTENTION_ROW_FIELDS = {"name": str, "claim": str, "statistic": float, "p_value": float, "alpha": float,
                        "effect_size": float, "sample_size": int, "seed": int, "method": str, "passed": bool,
                        "detail": str, "accepted_early": bool}


def _attention_problem(entry, alpha: float) -> str | None:
    """Why a cached attention-theory entry is unusable at level ``alpha`` (None if it is well formed). Besides the
    shape, each row must be one the checks can return: a refusal has no p-value and does not pass; any other row has a
    p-value in [0, 1] and passes exactly when it exceeds the row's level, which is the report's; no name twice."""
    if not isinstance(entry, dict) or not {"key", "seconds", "rows"} <= entry.keys():
        return "not an attention-theory entry"
    problem = _duration_problem(entry["seconds"]) or _records_problem(entry["rows"], ATTENTION_ROW_FIELDS, "row")
    if problem:
        return problem
    names = [row["name"] for row in entry["rows"]]
    if len(set(names)) != len(names):
        return "a row named twice"
    for row in entry["rows"]:
        p, a = row["p_value"], row["alpha"]
        if a != alpha or row["sample_size"] < 0:
            return f"row {row['name']}: a level other than the report's {alpha:g}, or a negative sample size"
        if row["method"] == "refused":
            if p == p or row["passed"]:
                return f"row {row['name']}: a refusal with a p-value or a pass"
        elif row["method"] == "stopped" or not 0 <= p <= 1 or row["passed"] != (p > a):
            return f"row {row['name']}: a p-value outside [0, 1], or a pass that does not match it"
    return None


def attention_section(out_dir: str | Path, *, budget: str = "quick", seed: int = 0, alpha: float = 1e-6) -> list:
    """The rows of :func:`~kerneltheory.testing.attention_theory.attention_theory_rows` for the report, cached in
    ``<out_dir>/attention_theory.<budget>.seed-<seed>.alpha-<α>.json`` under the claim matrix's key less its d and m
    (budget, seed, α, version, source digest): a second run reads them back. A corrupt file, or one holding a row
    that no check returns (see :func:`_attention_problem`), is recomputed with a
    :class:`~kerneltheory.experiments.study.CacheWarning`; like the other caches it guards against damage and stale
    results, not against a deliberate forgery."""
    from .experiments.study import write_checked_json
    from .testing.attention_theory import attention_theory_rows
    from .testing.checks import CheckResult

    path = Path(out_dir) / f"attention_theory.{_settings(budget, seed, alpha)}.json"
    key = {"budget": budget, "seed": seed, "alpha": alpha, "version": __version__, "source": source_digest()}
    cached = _read_cached(path, key, lambda entry: _attention_problem(entry, alpha))
    if cached is not None:
        return [CheckResult(**row) for row in cached["rows"]]
    start = time.perf_counter()
    rows = attention_theory_rows(quick=budget == "quick", base_seed=seed, alpha=alpha)
    write_checked_json(path, {"key": key, "seconds": round(time.perf_counter() - start, 3),
                              "rows": [r.as_dict() for r in rows]})
    return rows


def variance_section(results, out_dir: str | Path) -> tuple[list[str], dict]:
    """The Markdown lines and the JSON record of the variance sweeps (:class:`FigureResult` list)."""
    from .experiments import summary_table

    out = Path(out_dir)
    scale = results[0].scale if results else "quick"
    draws = sorted({int(r.frame["draws"].iloc[0]) for r in results})
    lines = [
        "## Variance sweeps",
        "",
        f"Empirical variance of one draw's estimate φ(x)ᵀφ(y) against the closed forms of `kerneltheory.theory`, "
        f"{scale} scale ({', '.join(map(str, draws))} seeded draws per point). Bands: s² ± 1.96·SE(s²), the "
        "asymptotic standard error from the fourth moment (too narrow for heavy-tailed positive features, where "
        "the sample variance also converges from below). Orthogonal frequencies are drawn against the iid closed "
        "form on purpose: a ratio below 1 is their variance reduction, so their cells fall outside the iid band (their "
        "own closed form, proofs/orthogonal_variance.md, is tested in the claim matrix above). About 5% of the "
        "cells of a correct closed form fall outside a 95% band. Tidy tables: "
        "`variance/<figure>.parquet`; regenerate with `kerneltheory variance --scale quick`. Findings: "
        "docs/variance.md.",
        "",
    ]
    record = {"scale": scale, "figures": []}
    for r in results:
        c = r.config
        png = None if r.png is None else Path(r.png).resolve().relative_to(out.resolve()).as_posix()
        parquet = Path(r.parquet).resolve().relative_to(out.resolve()).as_posix()
        table = summary_table(r.summary)
        lines += [f"### {c.title}", "", c.description, ""]
        if png is not None:
            lines += [f"![{c.title}]({png})", ""]
        lines += [markdown_table(table, list(table[0])), "",
                  f"`{c.name}`: {r.computed} cells computed, {r.cached} reused from the cache (an earlier figure's or "
                  f"run's), {r.seconds:.1f} s; table `{parquet}`.",
                  ""]
        record["figures"].append({"name": c.name, "title": c.title, "png": png, "parquet": parquet,
                                  "seconds": round(r.seconds, 3), "computed": r.computed, "cached": r.cached,
                                  "summary": r.summary, "config": c.to_dict()})
    return lines, record


def write_report(out_dir: str | Path, registry_rows: list[dict], matrix: list[dict] | None, *, budget: str,
                 seed: int, alpha: float, dim: int, num_features: int, variance=None,
                 timings: dict | None = None, attention: list | None = None) -> dict:
    """Write ``report.md``, ``report.json`` and ``report.html``; return their paths and the Markdown text.

    ``variance``: the :class:`~kerneltheory.experiments.FigureResult` list of the variance sweeps, or None.
    ``attention``: the rows of :func:`~kerneltheory.testing.attention_theory.attention_theory_rows`, or None.
    """
    out = Path(out_dir)
    parts = [
        "# kerneltheory report",
        "",
        f"kerneltheory {__version__}. {len(registry_rows)} estimator{'' if len(registry_rows) == 1 else 's'}.",
        "",
    ]
    summary = None
    if matrix is not None:
        failed = [M.cell_record(v, alpha) for v in M.cells(matrix, "FAILED")]
        refused = [M.cell_record(v, alpha) for v in M.cells(matrix, "refused")]
        summary = {"counts": M.counts(matrix), "estimators": len(matrix), "budget": budget, "seed": seed,
                   "alpha": alpha, "failed": failed, "refused": refused,
                   # claimed, but with no target apart from the estimator's own output: nothing verified (n/a)
                   "unverifiable": sorted(f"{v['estimator_name']} ({v['claim']})" for v in M.cells(matrix, "n/a")
                                          if v["claim"] == "unbiased"),
                   # a refused claim is no failure: the estimators are listed apart
                   "failed_estimators": sorted({c["estimator"] for c in failed}),
                   "refused_estimators": sorted({c["estimator"] for c in refused} - {c["estimator"] for c in failed})}
        parts += M.matrix_markdown(matrix, registry_rows, alpha=alpha, budget=budget, seed=seed, out_dir=out,
                                   table=markdown_table)
    variance_record = None
    if variance is not None:
        lines, variance_record = variance_section(variance, out)
        parts += lines
    attention_record = None
    if attention is not None:
        attention_record = [dict(r.as_dict(), status=("refused (vacuous bound)" if "vacuous" in r.detail else
                                                      r.status) if r.refused else r.status) for r in attention]
        parts += [
            "## Attention error theory",
            "",
            "Linear attention as a ratio estimator (bias and MSE to second order in 1/m, proofs/attention_ratio.md) "
            "and uniform convergence over a ball (proofs/uniform_convergence.md), each a calibrated check.",
            "",
            markdown_table(attention_record, ("name", "status", "method", "statistic", "p_value", "detail")),
            "",
        ]
    if timings:
        parts += ["## Timings", "", "Wall-clock seconds of this run; parts reused from an earlier run's cache under "
                  "the same output directory (claim-matrix entries, sweep cells, the attention theory's rows) take "
                  "only the time to read them: "
                  + ", ".join(f"{k}: {v:.1f} s" for k, v in timings.items()) + ".", ""]
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
        "registry": registry_rows, "matrix": matrix, "variance": variance_record, "timings": timings,
        "attention_theory": attention_record,
    }, strict=True)
    from .report_html import markdown_to_html  # here: the sweeps' commands import this module for its tables

    page = write_text_atomic(out / "report.html", markdown_to_html(text, out, title="kerneltheory report"))
    return {"markdown": md, "json": js, "html": page, "text": text, "summary": summary}


def run_variance(out_dir: str | Path, *, scale: str = "quick", configs=None, device: str = "cpu",
                 scheduler=None, progress: bool = True, locked: bool = False) -> list:
    """The variance sweeps of the report: every figure of ``configs`` (default: the shipped ones) at ``scale``,
    written to ``<out_dir>/variance/`` with its cells cached (and resumed) in ``<out_dir>/variance/cells/``, holding
    ``<out_dir>/variance``'s lock; ``locked=True``: the caller holds it already (:func:`run_report` does, until the
    report is written)."""
    from .experiments.runner import run_sweeps, sweeps_locked

    sweeps = sweeps_locked if locked else run_sweeps
    return sweeps(configs, scale=scale, out_dir=Path(out_dir) / "variance", scheduler=scheduler, device=device,
                  progress=progress)


def run_report(out_dir: str | Path = "report", *, budget: str = "quick", seed: int = 0, alpha: float = 1e-6,
               names: list[str] | None = None, matrix: bool = True, dim: int = 16, num_features: int = 64,
               progress: bool = True, variance: bool | None = None, variance_scale: str = "quick",
               variance_configs=None, device: str = "cpu", scheduler=None) -> dict:
    """The main job: registry + claim matrix + variance sweeps, written under ``out_dir``.

    ``variance=None`` runs the sweeps for the full report only (no ``names`` filter, ``matrix`` on): the figures
    cover estimator families, not the estimators a ``--only`` run selects. ``variance_configs`` replaces the
    shipped figures; ``device``/``scheduler`` as for ``kerneltheory variance``. The run holds ``out_dir``'s lock
    throughout (a second report into it is refused, naming the lock: two ran the whole matrix side by side), and
    ``<out_dir>/variance``'s from its sweeps until the report is written (a ``kerneltheory variance`` run into that
    folder in between replaced a figure the report then embedded beside another run's numbers).
    """
    from .experiments.study import OutputLock

    start = time.perf_counter()
    rows = estimators.table(dim=dim, num_features=num_features)  # checks dim and m before anything is created
    with OutputLock(out_dir):
        return _run_report(out_dir, rows, start, budget=budget, seed=seed, alpha=alpha, names=names, matrix=matrix,
                           dim=dim, num_features=num_features, progress=progress, variance=variance,
                           variance_scale=variance_scale, variance_configs=variance_configs, device=device,
                           scheduler=scheduler)


def _run_report(out_dir, rows, start, *, budget, seed, alpha, names, matrix, dim, num_features, progress, variance,
                variance_scale, variance_configs, device, scheduler) -> dict:
    from .experiments.study import OutputLock

    timings: dict[str, float] = {}
    if names is not None:
        keep = {estimators.resolve(n) for n in names}
        rows = [r for r in rows if r["estimator"] in keep]
    mat = claim_matrix(out_dir, names=names, budget=budget, seed=seed, alpha=alpha, progress=progress) \
        if matrix else None
    if matrix:
        timings["claim matrix"] = time.perf_counter() - start
    if variance is None:
        variance = matrix and names is None
    results = None
    with contextlib.ExitStack() as held:
        if variance:  # held until the report that embeds the figures is written
            held.enter_context(OutputLock(Path(out_dir) / "variance"))
            t = time.perf_counter()
            results = run_variance(out_dir, scale=variance_scale, configs=variance_configs, device=device,
                                   scheduler=scheduler, progress=progress, locked=True)
            timings["variance sweeps"] = time.perf_counter() - t
        attention = None
        if matrix and names is None:
            t = time.perf_counter()
            attention = attention_section(out_dir, budget=budget, seed=seed, alpha=alpha)
            timings["attention theory"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - start
        return write_report(out_dir, rows, mat, budget=budget, seed=seed, alpha=alpha, dim=dim,
                            num_features=num_features, variance=results, timings=timings if variance else None,
                            attention=attention)
