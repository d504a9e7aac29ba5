"""App start-up time with the index already built: process start to the first HTTP 200, median of N runs.

    .venv/bin/python bench/app_start.py [--runs 3]

Writes the APP block of bench/RESULTS.md. The target (issue: the app starts in <= 15 s on a 2-core machine)
is the time until the page is served; the models then load in the background.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results_file import write_block  # noqa: E402

TARGET_S = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_start() -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - started < 120:
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited with {proc.returncode}; run `python -m rag index` first")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise SystemExit("app.py did not answer within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "rag", "index"], cwd=ROOT, check=True, capture_output=True)
    times = [time_start() for _ in range(args.runs)]
    median = statistics.median(times)
    verdict = "met" if median <= TARGET_S else f"missed by {median - TARGET_S:.1f} s"
    body = "\n".join(
        [
            "## App start-up (`python app.py`, index already built)",
            "",
            f"- Command: `python bench/app_start.py --runs {args.runs}`; "
            f"{datetime.now(UTC).isoformat(timespec='seconds')}; {os.cpu_count()} cores, "
            f"load average at the end {os.getloadavg()[0]:.1f}",
            f"- Process start to first HTTP 200: median {median:.2f} s over {args.runs} runs "
            f"({', '.join(f'{t:.2f}' for t in times)} s); target <= {TARGET_S:.0f} s: {verdict}",
        ]
    )
    write_block("APP", body, ROOT / "bench" / "RESULTS.md")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
