"""Teacher throughput: completions/s and tokens/s from an OpenAI-compatible server at several
concurrency levels, through the same client the `openai` backend uses.

    .venv/bin/python benchmarks/teacher_throughput.py                      # serves SmolLM2 itself
    .venv/bin/python benchmarks/teacher_throughput.py --base-url http://host:8000/v1 --model NAME

Prints one JSON object per measurement and writes benchmarks/results/teacher_throughput.json
with the machine, the versions and the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import figure, write_results  # noqa: E402

from qrdistill.llm import BackendConfig
from qrdistill.llm.openai import OpenAIBackend
from qrdistill.llm.request import make_request
from qrdistill.teacher.styles import BUILTIN_STYLES, apply_style

QUESTIONS = [
    "Tom has 3 apples and buys 2 more. How many apples does he have now?",
    "A box holds 4 pens. How many pens are in 3 boxes?",
    "Sara reads 12 pages a day. How many pages does she read in a week?",
    "A train travels 60 km in one hour. How far does it travel in 2.5 hours?",
]


def serve_packaged_model(threads: int | None) -> tuple[subprocess.Popen, str, str]:
    """Start `transformers serve` with the packaged SmolLM2 on a free loopback port."""
    from qrdistill.models import packaged_model_path

    folder = str(packaged_model_path("smollm2-135m-instruct"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "transformers"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            folder,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    for _ in range(360):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            return server, f"http://127.0.0.1:{port}/v1", folder
        except OSError:
            if server.poll() is not None:
                sys.exit("transformers serve exited while starting")
            time.sleep(0.5)
    server.terminate()
    sys.exit("transformers serve did not become healthy")


def measure(cfg: BackendConfig, requests: int, run_id: str) -> dict:
    backend = OpenAIBackend(cfg)
    prompts = [
        apply_style(template, question)
        for question in QUESTIONS
        for template in BUILTIN_STYLES.values()
    ]
    # The run id goes into the sample index, so no two measurements send identical requests.
    batch = [
        make_request(cfg, prompts[i % len(prompts)], i, f"{run_id} request {i}")
        for i in range(requests)
    ]
    start = time.perf_counter()
    results = [generation for _, generation in backend.run(batch)]
    seconds = time.perf_counter() - start
    completion_tokens = sum(g.completion_tokens for g in results)
    prompt_tokens = sum(g.prompt_tokens for g in results)
    return {
        "concurrency": cfg.concurrency,
        "requests": requests,
        "max_tokens": cfg.max_tokens,
        "seconds": round(seconds, 3),
        "completions_per_s": round(requests / seconds, 3),
        "completion_tokens_per_s": round(completion_tokens / seconds, 2),
        "total_tokens_per_s": round((prompt_tokens + completion_tokens) / seconds, 2),
        "completion_tokens": completion_tokens,
        "prompt_tokens": prompt_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", help="an already running server; default: serve SmolLM2 here")
    parser.add_argument("--model", help="model name the server expects (with --base-url)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--requests", type=int, default=12, help="per level (at least the concurrency)"
    )
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--server-threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for the server this script starts (default: torch's choice)",
    )
    args = parser.parse_args()

    server = None
    if args.base_url:
        base_url, model = args.base_url, args.model or "default"
    else:
        server, base_url, model = serve_packaged_model(args.server_threads)
    try:
        cfg = BackendConfig(
            kind="openai",
            model=model,
            base_urls=[base_url],
            api_key_env=None,
            max_tokens=args.max_tokens,
            temperature=0.8,
            max_retries=2,
            request_timeout_s=600,
        )
        measure(cfg.model_copy(update={"concurrency": 1}), 1, "warm-up")
        measurements = []
        for level in args.concurrency:
            level_cfg = cfg.model_copy(update={"concurrency": level})
            row = measure(level_cfg, max(args.requests, level), f"c{level}")
            print(json.dumps(row), flush=True)
            measurements.append(row)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    figures = {
        f"completions_per_s/concurrency_{row['concurrency']}": figure(
            row["completions_per_s"],
            f"completions/s ({row['requests']} requests of up to {row['max_tokens']} tokens)",
            "none: context (one CPU server; a GPU server scales with concurrency)",
        )
        for row in measurements
    }
    write_results(
        "teacher_throughput",
        {
            "figures": figures,
            "server": "transformers serve (packaged SmolLM2-135M-Instruct, cpu, float32)"
            if server
            else base_url,
            "server_threads": args.server_threads,
            "measurements": measurements,
        },
        packages=("torch", "transformers", "openai", "qrdistill"),
    )


if __name__ == "__main__":
    main()
