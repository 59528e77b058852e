"""Stage 2: keep paths with the right answer that the judge finds sound.

out_dir/judged.jsonl  every path with its verdict and `kept`
out_dir/kept.jsonl    the kept paths only (what training reads)
out_dir/funnel.json   per style and in total: generated -> answer_correct -> judge_kept
out_dir/usage.json    the judge's tokens and USD (when prices are set) per style and in total
out_dir/cache.sqlite  judge requests; filtering again (another threshold) makes no new calls
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from qrdistill.llm import RequestCache
from qrdistill.llm.budget import Spend, usage_report
from qrdistill.quality.config import FilterConfig
from qrdistill.quality.judge import judge_paths
from qrdistill.records import JudgeVerdict, ReasoningPath, Usage
from qrdistill.utils.io import read_jsonl_as, write_json, write_jsonl


def is_kept(
    path: ReasoningPath, verdict: JudgeVerdict, cfg: FilterConfig, threshold: float
) -> bool:
    if cfg.answer_check and not path.correct:
        return False
    if not cfg.judge_enabled:
        return True
    if verdict.status == "unparseable":
        return cfg.on_unparseable == "keep"
    return verdict.score is not None and verdict.score >= threshold


def funnel_counts(paths: list[ReasoningPath], cfg: FilterConfig, threshold: float) -> dict:
    def counts(group: list[ReasoningPath]) -> dict:
        return {
            "generated": len(group),
            "answer_correct": sum(p.correct for p in group),
            "judge_kept": sum(bool(p.kept) for p in group),
            "judge_unparseable": sum(
                p.judge is not None and p.judge.status == "unparseable" for p in group
            ),
        }

    styles = list(dict.fromkeys(p.style for p in paths))
    return {
        "threshold": threshold,
        "answer_check": cfg.answer_check,
        "judge_enabled": cfg.judge_enabled,
        "on_unparseable": cfg.on_unparseable,
        "per_style": {s: counts([p for p in paths if p.style == s]) for s in styles},
        "total": counts(paths),
    }


def judge_usage(paths: list[ReasoningPath], cfg: FilterConfig) -> dict:
    """The judge's tokens (and USD at its prices) per style of the judged path and in total."""
    per_style: dict[str, list[Usage]] = {}
    for path in paths:
        if path.judge is not None and path.judge.status != "skipped":
            per_style.setdefault(path.style, []).append(path.judge.usage)
    return usage_report(cfg.judge, per_style, "paths_judged")


def funnel_table(funnel: dict) -> Table:
    """The funnel as a rich table (the CLI prints it)."""

    def cell(count: int, generated: int) -> str:
        return f"{count} ({100 * count / generated:.0f}%)" if generated else "0"

    judge = f"threshold {funnel['threshold']}" if funnel["judge_enabled"] else "judge off"
    table = Table(title=f"Quality filter funnel ({judge})")
    for column in ("style", "generated", "answer correct", "judge kept", "unparseable"):
        table.add_column(column, justify="left" if column == "style" else "right")
    rows = [*funnel["per_style"].items(), ("total", funnel["total"])]
    for style, c in rows:
        table.add_row(
            style,
            str(c["generated"]),
            cell(c["answer_correct"], c["generated"]),
            cell(c["judge_kept"], c["generated"]),
            str(c["judge_unparseable"]),
            end_section=style == rows[-2][0],
        )
    return table


def filter_paths(
    cfg: FilterConfig, paths_path: Path, out_dir: Path, threshold: float | None = None
) -> Path:
    """Judge and filter the paths in `paths_path`; return out_dir/kept.jsonl.

    `threshold` overrides `cfg.threshold`; verdicts come from the cache when the same paths were
    judged before, so trying another threshold costs no calls.
    """
    out_dir = Path(out_dir)
    threshold = cfg.threshold if threshold is None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"threshold must be in [0, 1] (judge scores are normalised), got {threshold}"
        )
    paths = read_jsonl_as(paths_path, ReasoningPath)
    # Only paths that survive the answer check are worth a judge call.
    to_judge = [p for p in paths if p.correct or not cfg.answer_check] if cfg.judge_enabled else []
    with RequestCache(out_dir / "cache.sqlite") as cache:
        verdicts = judge_paths(
            cfg.judge,
            cfg.template,
            cfg.judge_attempts,
            to_judge,
            cache,
            show_progress=cfg.show_progress,
            scoring=cfg.judge_scoring,
            spend=Spend(cfg.judge, cfg.budget) if cfg.budget is not None else None,
        )
    skipped = JudgeVerdict(
        status="skipped",
        reason="judge disabled" if not cfg.judge_enabled else "answer incorrect; not judged",
    )
    judged = []
    for path in paths:
        verdict = verdicts.get(path.id, skipped)
        judged.append(
            path.model_copy(
                update={"judge": verdict, "kept": is_kept(path, verdict, cfg, threshold)}
            )
        )
    write_jsonl(out_dir / "judged.jsonl", judged)
    kept_path = out_dir / "kept.jsonl"
    write_jsonl(kept_path, [p for p in judged if p.kept])
    write_json(out_dir / "funnel.json", funnel_counts(judged, cfg, threshold))
    write_json(out_dir / "usage.json", judge_usage(judged, cfg))
    return kept_path
