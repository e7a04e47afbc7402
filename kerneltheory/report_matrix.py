"""The claim matrix of ``kerneltheory report`` as Markdown, as a console summary, and as an exit status.

Each estimator's report has a total false-failure rate α, split evenly (Bonferroni) across its checks: a check
gets the share α_c and rejects when its own ("raw") p-value is at most α_c. Equivalently, the report-level
Bonferroni-adjusted p-value

    p_adj = min(1, p · α / α_c)

is compared with α itself (proofs/verification.md §6: α split evenly over N checks gives p_adj = min(1, N·p)).
The Markdown and the HTML page show p_adj, labelled as adjusted, with the raw p beside it. The tables group the
estimators by family (their component function, or "deterministic maps" for the maps without a frequency law);
every cell links to its detail section (the table of its checks) and to the proof file of the claim.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

CLAIMS = ("unbiased", "positive", "variance", "finite")
VERDICTS = ("verified", "FAILED", "refused", "refuted", "not refuted", "n/a")
#: ``--fail-on`` choices: which claimed verdicts make ``kerneltheory report`` exit with status 1.
FAIL_ON = {"failed": ("FAILED",), "refused": ("FAILED", "refused")}
DETERMINISTIC = "deterministic maps"


def slug(text: str) -> str:
    """The HTML id of a heading: lower case, every run of other characters than a–z and 0–9 made one "-"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def heading_id(text: str) -> str:
    """The anchor of a heading, as GitHub renders Markdown (lower case, characters other than letters, digits,
    ``_``, ``-`` and spaces dropped, each space made ``-``) and as report.html writes it, so the links of report.md
    land on their sections in both: ``"positive/gaussian: unbiased"`` → ``"positivegaussian-unbiased"``."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def cell_heading(estimator: str, claim: str) -> str:
    """The heading of a cell's detail section (its anchor is :func:`heading_id` of it)."""
    return f"{estimator}: {claim}"


def adjusted_p(p: float, alpha_check: float, alpha_total: float) -> float:
    """Bonferroni-adjusted p-value of a check at the report level: min(1, p · α / α_c)."""
    if not (p == p) or not alpha_check > 0:
        return math.nan
    return min(1.0, p * alpha_total / alpha_check)


def picked_check(v: dict) -> dict | None:
    """The check behind a verdict's p-value and evidence (the first rejecting check, else the smallest p)."""
    checks = v.get("checks") or []
    for c in checks:
        same_p = c["p_value"] == v["p_value"] or (c["p_value"] != c["p_value"] and v["p_value"] != v["p_value"])
        if same_p and (v["evidence"] == c["name"] or v["evidence"].startswith(c["name"] + ": ")):
            return c
    return None


def _fmt(x: float) -> str:
    return "—" if x != x else f"{x:.2g}"


def p_pair(v: dict, alpha_total: float) -> tuple[float, float]:
    """(adjusted p, raw p) of a verdict; NaN when it has none (n/a, refused)."""
    c = picked_check(v)
    raw = v["p_value"]
    return (math.nan if c is None else adjusted_p(raw, c["alpha"], alpha_total)), raw


def proof_href(proof: str, out_dir: Path) -> str | None:
    """A relative link from the report directory to the proof file, when the source checkout has it."""
    if not proof:
        return None
    path = Path(__file__).resolve().parents[1] / proof
    if not path.is_file():
        return None
    try:
        return Path(os.path.relpath(path, out_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path
        return path.as_uri()


def matrix_cell(v: dict, alpha_total: float, out_dir: Path) -> str:
    anchor = heading_id(cell_heading(v["estimator_name"], v["claim"]))
    parts = [f"[{v['verdict']}](#{anchor})"]
    if v["verdict"] != "n/a":
        adj, raw = p_pair(v, alpha_total)
        if raw == raw:
            parts.append(f"adj. p {_fmt(adj)} (raw {_fmt(raw)})")
        if v["effect_size"] == v["effect_size"]:
            parts.append(f"effect {_fmt(v['effect_size'])}")
    href = proof_href(v.get("proof", ""), out_dir)
    if href is not None:
        parts.append(f"[proof]({href})")
    return " · ".join(parts)


def family(row: dict | None, name: str) -> str:
    """An estimator's family: its component function, or "deterministic maps" when it has no law."""
    if row is None:
        return name.split("/")[0] if "/" in name else DETERMINISTIC
    return DETERMINISTIC if row.get("law") in ("—", "", None) else str(row["component"])


def _entry_verdicts(entry: dict) -> list[dict]:
    return [{**v, "estimator_name": entry["estimator"]} for v in entry["verdicts"]]


def cells(matrix: list[dict], verdict: str) -> list[dict]:
    """Every cell of the matrix with this verdict (the estimator's registry name in ``estimator_name``)."""
    return [v for e in matrix for v in _entry_verdicts(e) if v["verdict"] == verdict]


def counts(matrix: list[dict]) -> dict[str, int]:
    out = {k: 0 for k in VERDICTS}
    for e in matrix:
        for v in e["verdicts"]:
            out[v["verdict"]] = out.get(v["verdict"], 0) + 1
    return out


def exit_status(summary: dict | None, fail_on: str = "failed") -> int:
    """1 when a claimed cell has a verdict that ``fail_on`` counts as a failure (:data:`FAIL_ON`), else 0.

    ``summary``: the report's summary (``FAILED`` cells under ``"failed"``, refused ones under ``"refused"``);
    None (no claim matrix) gives 0."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on must be one of {sorted(FAIL_ON)}, got {fail_on!r}")
    if summary is None:
        return 0
    return int(any(summary[verdict.lower()] for verdict in FAIL_ON[fail_on]))


def cell_record(v: dict, alpha_total: float) -> dict:
    """The JSON summary of a FAILED or refused cell."""
    adj, raw = p_pair(v, alpha_total)
    return {"estimator": v["estimator_name"], "claim": v["claim"], "verdict": v["verdict"],
            "evidence": v["evidence"], "method": v["method"], "p_adjusted": adj, "p_raw": raw,
            "effect_size": v["effect_size"], "proof": v.get("proof", "")}


def _line(r: dict) -> str:
    stats = "" if r["p_raw"] != r["p_raw"] else (
        f" (adj. p {_fmt(r['p_adjusted'])}, raw p {_fmt(r['p_raw'])}, effect {_fmt(r['effect_size'])})")
    return f"  {r['estimator']} · {r['claim']}: {r['evidence'] or r['method']}{stats}"


def _properties(n: int) -> str:
    return f"{n} claimed propert{'y' if n == 1 else 'ies'}"


def console_summary(summary: dict, paths: dict, *, fail_on: str = "failed") -> str:
    """The few lines ``kerneltheory report`` prints on stdout: counts, FAILED and refused cells, the files."""
    lines = []
    if summary is not None:
        c = summary["counts"]
        n = summary["estimators"]
        lines.append(f"claim matrix: {n} estimator{'' if n == 1 else 's'} × {len(CLAIMS)} claims, {summary['budget']} "
                     f"budget, seed {summary['seed']}, α = {summary['alpha']:g} per estimator")
        lines.append("  " + ", ".join(f"{k}: {c.get(k, 0)}" for k in VERDICTS))
        if summary["failed"]:
            lines.append(f"FAILED: {_properties(len(summary['failed']))} rejected")
            lines += [_line(r) for r in summary["failed"]]
        if summary["refused"]:
            then = "counted as failures (--fail-on refused)" if fail_on == "refused" else \
                "each line says why (heavy tails: --budget thorough may test them where fewer draws were the reason)"
            status = f"not tested, never a pass; {then}"
            lines.append(f"REFUSED: {_properties(len(summary['refused']))} {status}")
            lines += [_line(r) for r in summary["refused"]]
        if not summary["failed"] and not summary["refused"]:
            own = summary.get("unverifiable", [])
            lines.append("every claimed property was verified" if not own else
                         f"every claimed property was verified but {len(own)} read n/a: their only target is the "
                         "estimator's own output, which no check can fail (proofs/monte_carlo_reference.md, items 5–6)")
    lines.append("report: " + str(paths["html"]))
    lines.append("also:   " + ", ".join(str(paths[k]) for k in ("markdown", "json")))
    return "\n".join(lines)


def _check_rows(v: dict, alpha_total: float) -> list[dict]:
    rows = []
    for c in v.get("checks") or []:
        # "refused" (cannot mean anything here) and "stopped" (a sequential run ended first) are not verdicts
        result = "pass" if c["passed"] else (c["method"] if c["method"] in ("refused", "stopped") else "reject")
        rows.append({"check": c["name"], "method": c["method"], "statistic": _fmt(c["statistic"]),
                     "adj. p": _fmt(adjusted_p(c["p_value"], c["alpha"], alpha_total)),
                     "raw p": _fmt(c["p_value"]), "α share": f"{c['alpha']:.2g}",
                     "effect": _fmt(c["effect_size"]), "n": c["sample_size"], "seed": c["seed"],
                     "result": result, "detail": c.get("detail", "")})
    return rows


def _claimed(v: dict) -> str:
    """What the estimator claims, as a finding reads it: the matrix tests *exact* unbiasedness at m = 16, so a bias
    found where only asymptotic (or no) unbiasedness is claimed refutes no claim of the estimator."""
    if v["claim"] == "unbiased" and v["claimed"] != "exact":
        return f"claimed: {v['claimed']}; tested: exact unbiasedness at this m"
    return f"claimed: {v['claimed']}"


def matrix_markdown(matrix: list[dict], registry_rows: list[dict], *, alpha: float, budget: str, seed: int,
                    out_dir: Path, table) -> list[str]:
    """The "Claim matrix" and "Details" sections: one table per family, then one section per cell.

    ``table(rows, columns)`` renders a Markdown table (:func:`kerneltheory.report.markdown_table`)."""
    by_name = {r["estimator"]: r for r in registry_rows}
    groups: dict[str, list[dict]] = {}
    for entry in matrix:
        groups.setdefault(family(by_name.get(entry["estimator"]), entry["estimator"]), []).append(entry)
    n = counts(matrix)
    failed, refused = cells(matrix, "FAILED"), cells(matrix, "refused")
    lines = [
        "## Claim matrix",
        "",
        f"Every estimator × claim at the {budget} budget (d = 4, m = 16; seed {seed}). Each estimator's report has "
        f"a total false-failure rate α = {alpha:g}, split evenly across its checks (Bonferroni): a check with share "
        "α_c rejects when its raw p ≤ α_c. **adj. p** is the report-level Bonferroni-adjusted p-value "
        "min(1, raw p · α / α_c), compared with α; **raw** is the check's own p-value. Verdicts: "
        "`verified` (claimed, all checks passed), `FAILED` (claimed, rejected), `refused` (claimed, no meaningful "
        "test here: tails too heavy for the draws after re-runs, or a check not calibrated for the law — never a "
        "pass), `refuted` (not claimed, counterexample found), `not refuted` (not "
        "claimed, none found at this budget), `n/a` (no closed-form variance; or an unbiasedness whose only target is "
        "the estimator's own output, OPRF's and SADERF's under a learned law or a deterministic map's own Gram, which "
        "no check can fail: proofs/monte_carlo_reference.md, items 5–6). Each verdict links to its checks; "
        "*proof* links to the proof of the claim. In the tables of checks, **n** is the number of draws (of values "
        "checked, for an exhaustive check such as positivity).",
        "",
        "Totals: " + ", ".join(f"{k}: {n[k]}" for k in VERDICTS) + ".",
        "",
        "Claimed properties that FAILED: "
        + (", ".join(f"{v['estimator_name']} ({v['claim']})" for v in failed) or "none") + ".",
        "",
        "Claimed properties refused (not tested: each row says why; never a pass): "
        + (", ".join(f"{v['estimator_name']} ({v['claim']})" for v in refused) or "none") + ".",
        "",
    ]
    for fam, entries in sorted(groups.items(), key=lambda kv: (kv[0] == DETERMINISTIC, kv[0])):
        rows = []
        for entry in entries:
            by_claim = {v["claim"]: v for v in _entry_verdicts(entry)}
            rows.append({"estimator": entry["estimator"],
                         **{c: matrix_cell(by_claim[c], alpha, out_dir) for c in CLAIMS}})
        lines += [f"### Family: {fam}", "", table(rows, ("estimator", *CLAIMS)), ""]
    findings = [
        f"- [**{v['estimator_name']}**, {v['claim']}](#{heading_id(cell_heading(v['estimator_name'], v['claim']))}) "
        f"({_claimed(v)}): {v['verdict']} — {v['evidence']} (effect size {_fmt(v['effect_size'])}, "
        f"{v['method']})"
        for verdict in ("FAILED", "refused", "refuted") for v in cells(matrix, verdict)
    ]
    lines += ["### Counterexamples and failures", "", *(findings or ["none"]), ""]
    lines += ["## Details", "", "The checks behind every cell: method, statistic, adjusted and raw p-values, the "
              "check's share α_c of α, effect size, n, seed and result.", ""]
    for entry in matrix:
        lines += [f"### {entry['estimator']}", ""]
        for v in _entry_verdicts(entry):
            adj, raw = p_pair(v, alpha)
            head = f"#### {cell_heading(entry['estimator'], v['claim'])}"
            claimed = f"claimed: {v['claimed']}"
            lines += [head, "", f"**{v['verdict']}** ({claimed}). {v['evidence'] or v['method'] or 'nothing to check'}"
                      + ("" if raw != raw else f" — adj. p {_fmt(adj)}, raw p {_fmt(raw)}.") + "", ""]
            href = proof_href(v.get("proof", ""), out_dir)
            if v.get("proof"):
                lines += [f"Proof: [{v['proof']}]({href})." if href else f"Proof: {v['proof']} (source checkout).", ""]
            rows = _check_rows(v, alpha)
            if rows:
                lines += [table(rows, list(rows[0])), ""]
    return lines
