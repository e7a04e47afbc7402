"""The registry report: every estimator with its target kernel, its claims and the proofs behind them."""

from __future__ import annotations

from pathlib import Path

from . import estimators
from .io import write_json_atomic, write_text_atomic

COLUMNS = ("estimator", "aliases", "target", "unbiased", "positive", "variance", "proofs")


def markdown_table(rows: list[dict], columns=COLUMNS) -> str:
    def cell(v) -> str:
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def registry_report(out_dir: str | Path, *, dim: int = 16, num_features: int = 64) -> dict:
    """Build the registry table, write ``registry.md`` and ``registry.json`` into ``out_dir``; return paths."""
    rows = estimators.table(dim=dim, num_features=num_features)
    out = Path(out_dir)
    md = (
        f"# kerneltheory registry\n\n{len(rows)} estimators (built at d = {dim}, m = {num_features}). "
        "`unbiased`: exact / asymptotic / no; `variance`: closed form of one draw's variance.\n\n"
        + markdown_table(rows)
        + "\n"
    )
    md_path = write_text_atomic(out / "registry.md", md)
    json_path = write_json_atomic(
        out / "registry.json", {"dim": dim, "num_features": num_features, "rows": rows}
    )
    return {"rows": rows, "markdown": md_path, "json": json_path, "text": md}
