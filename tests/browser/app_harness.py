"""Start app.py as a real server and drive it with headless Chromium (shared by test_e2e.py and screenshot.py).

Playwright's own browser download needs the network, so the system Chromium (/usr/bin/chromium, from
`apt-get install chromium`; `make test` installs it) is used instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "seeds"
SCREENSHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# Offline, quiet, no background fetches of its own (updates, sync, safe browsing lists), so that every request
# the test records comes from the page.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
        return True
    return (parts.hostname or "") in LOOPBACK_HOSTS


@contextmanager
def running_app(workdir: Path, *, model: str = "test", timeout_s: float = 180.0) -> Iterator[tuple[str, Path]]:
    """app.py on a free port over a private copy of seeds/ and a fresh index; yields (URL, corpus folder).

    The index is built by the app itself (--build) before it starts serving."""
    corpus = workdir / "corpus"
    shutil.copytree(SEEDS, corpus)
    port = free_port()
    log_path = workdir / "app.log"
    env = dict(os.environ, GRADIO_TEMP_DIR=str(workdir / "gradio-tmp"), PYTHONUNBUFFERED="1")
    command = [sys.executable, str(ROOT / "app.py"), "--corpus", str(corpus), "--index", str(workdir / "index")]
    command += ["--model", model, "--build", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process, log_path, timeout_s)
        yield url, corpus
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen, timeout_s: float = 15) -> None:
    """Terminate `process` and wait for it; kill it when it does not exit within `timeout_s`."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_http(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> float:
    """Seconds until `url` answered HTTP 200; raises with the app's log when it exits or never answers."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"app.py did not answer on {url} within {timeout_s:.0f} s:\n{log_path.read_text()[-4000:]}")


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def final_answers(page) -> int:
    """Answers finished in the chat (drafts and status messages do not count)."""
    return page.locator("#chat .rag-answer:not(.rag-draft)").count()


def ask(page, question: str, timeout_s: float = 120.0):
    """Type a question, send it, wait for its verified answer; returns the answer's locator."""
    before = final_answers(page)
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    try:
        page.wait_for_function(
            "n => document.querySelectorAll('#chat .rag-answer:not(.rag-draft)').length > n",
            arg=before,
            timeout=timeout_s * 1000,
        )
    except Exception as exc:  # say what the page showed instead: a hanging draft, an error, nothing
        raise AssertionError(
            f"no answer to {question!r} within {timeout_s:.0f} s; the chat shows:\n"
            f"{page.locator('#chat').inner_text()[-2000:]}"
        ) from exc
    return page.locator("#chat .rag-answer:not(.rag-draft)").last


def clear(page) -> None:
    """Clear the conversation and wait until the chat is empty."""
    page.locator("#clear").click()
    page.wait_for_function("() => !document.querySelector('#chat .rag-answer')", timeout=10_000)
