"""What the OpenAI-compatible API adds to an answer's time: `rag.answer` called directly vs the same question through
`POST /v1/chat/completions` on a local uvicorn server, in one run.

    .venv/bin/python bench/api.py [--requests 60]

The assistant is the default configuration over seeds/ with `[answer] min_confidence = 1`, so every question
is refused after search and evidence selection and no chat model runs: what is left is the part both paths
share plus, for the API, the HTTP layer. The questions are the seeds dev questions, asked in turn; direct and
HTTP calls alternate, so both see the same machine load. Writes the API block of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from results_file import publish  # bench/ is on sys.path when this file runs as a script

import rag
from rag.server import create_app

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = parser.parse_args()
    import uvicorn

    cfg = rag.load_config(REPO / "config.toml").with_overrides(answer={"min_confidence": 1.0})
    assistant = rag.Assistant(cfg)
    questions = [json.loads(line)["q"] for line in (EVAL / "seeds_dev.jsonl").read_text(encoding="utf-8").splitlines()]
    assistant.answer(questions[0])  # loads the models before timing
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app({"seeds": assistant}), port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    direct, http = [], []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for i in range(args.requests):
            q = questions[i % len(questions)]
            started = time.perf_counter()
            assistant.answer(q)
            direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            reply = client.post(
                "/v1/chat/completions", json={"model": "seeds", "messages": [{"role": "user", "content": q}]}
            )
            http.append(time.perf_counter() - started)
            reply.raise_for_status()
    server.should_exit = True
    p50_direct, p50_http = statistics.median(direct) * 1000, statistics.median(http) * 1000
    lines = [
        "## API overhead (`bench/api.py`)",
        "",
        f"- Command: `python bench/api.py --requests {args.requests}`; "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}; {platform.machine()}, {os.cpu_count()} cores",
        f"- {args.requests} seeds dev questions, refused after search and evidence (no chat model), alternating "
        "direct and HTTP calls in one process.",
        "",
        "| | p50 | p90 |",
        "|---|---|---|",
        f"| `Assistant.answer` | {p50_direct:.1f} ms | {statistics.quantiles(direct, n=10)[-1] * 1000:.1f} ms |",
        f"| `POST /v1/chat/completions` | {p50_http:.1f} ms | {statistics.quantiles(http, n=10)[-1] * 1000:.1f} ms |",
        f"| HTTP layer (difference of medians) | {p50_http - p50_direct:.1f} ms | |",
        "",
    ]
    publish("API", lines, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
