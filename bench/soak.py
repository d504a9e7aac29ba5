"""Soak: 8 threads calling `rag.answer` for 2 minutes, then 4 HTTP clients of the app, then 4 clients of the
OpenAI-compatible API (`python -m rag serve`), 2 minutes each.

    .venv/bin/python bench/soak.py                         # 120 s per phase, chat model "fast"
    .venv/bin/python bench/soak.py --duration 600 --model quality
    .venv/bin/python bench/soak.py --phases threads --duration 30 --no-results   # a quick look

The corpus is a copy of seeds/ in a temporary folder, indexed with the real e5 model; the questions are az, ru
and en, answerable from the seeds and not. Each phase first answers every question once with one caller (the
reference answers; this also loads the models), then runs all callers at once for `--warmup` seconds (default
30: the memory of 8 answers in flight at once, and the allocator's per-thread arenas, take that long to settle),
and only then takes the resident memory "after warm-up". For `--duration` seconds every caller then asks the
questions in turn, and every answer, of the warm-up too, is checked:

- errors: calls that raised (in-process) or requests that failed (HTTP);
- malformed: an Answer whose citations do not point at their passages with exact offsets, a refusal without the
  refusal phrase of its language, a marker without a source; over HTTP, a reply that is not a final answer, or
  whose Markdown differs from the in-process reference; from the API, a reply that is not an OpenAI chat
  completion, or whose content and citations differ from the reference;
- identical: at temperature 0 every answer to a question must equal its reference (timings aside);
- memory: resident set size after warm-up, at the end, and the highest sampled each second, of this process
  (threads) or of the app's or the API server's process (HTTP); growth = end / after warm-up - 1 (target: under 10 %).

The chat model serves one answer at a time (one llama.cpp context behind a lock), so the callers queue for
it: latency under load is about the number of callers waiting times the time of one answer. Refusals do not
need the model and return in well under a second. Writes the SOAK block of bench/RESULTS.md (other blocks are
kept) and every figure to bench/out/soak.json.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results_file import write_block  # noqa: E402

import rag  # noqa: E402
from rag.prompts import REFUSAL  # noqa: E402

SEEDS = ROOT / "seeds"
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "RESULTS.md"
GROWTH_TARGET = 0.10
SAMPLES_AT_EACH_END = 5  # one a second
QUESTIONS = [
    ("What did Uzbekistan say about territorial integrity?", "en"),
    ("Blinken İlham Əliyevə hansı tarixdə zəng edib?", "az"),
    ("Кто возглавлял делегацию Азербайджана на консультациях с Узбекистаном?", "ru"),
    ("What did President Aliyev tell Blinken about civilians during the anti-terror measures?", "en"),
    ("С каким министром Кыргызстана встретился Байрамов?", "ru"),
    ("Bayramov İƏT-in Baş katibi ilə nəyi müzakirə edib?", "az"),
    ("What is the price of bananas in Peru?", "en"),
    ("Marsda nə qədər su var?", "az"),
    ("Какая погода будет завтра в Токио?", "ru"),
]
LANG = dict(QUESTIONS)


# -- memory ---------------------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident set size of a process: psutil when installed (a bench extra), else /proc/<pid>/status."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
        return int(match.group(1)) / 1024 if match else 0.0


class RssSampler:
    """The process's resident memory every second while the measured part of a phase runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.samples.append((round(time.monotonic() - self._started, 1), round(rss_mb(self.pid), 1)))
            except (OSError, ValueError):  # the process is gone: the phase reports it as an error
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- checks ---------------------------------------------------------------------------------------------------


def answer_problems(answer: rag.Answer, question: str, texts: dict[str, str]) -> list[str]:
    """What is wrong with an Answer: fields that disagree, offsets that do not point at their text."""
    lang = LANG[question]
    problems = []
    if answer.question != question or answer.lang != lang:
        problems.append(f"question or language changed ({answer.lang!r})")
    if answer.refused != (answer.mode == "refused"):
        problems.append(f"mode {answer.mode!r} with refused={answer.refused}")
    for hit in answer.related:
        if texts.get(hit.source, "")[hit.start : hit.end] != hit.text:
            problems.append(f"related passage of {hit.source} is not at its offsets")
    if answer.refused:
        if answer.text != REFUSAL[lang] or answer.citations:
            problems.append("a refusal without the refusal phrase, or with citations")
        return problems
    if not answer.citations:
        problems.append("an answer without citations")
    for c in answer.citations:
        document = texts.get(c.source, "")
        if document[c.start : c.end] != c.text or document[c.quote_start : c.quote_end] != c.quote:
            problems.append(f"citation [{c.n}] is not at its offsets in {c.source}")
        if not c.start <= c.quote_start < c.quote_end <= c.end:
            problems.append(f"citation [{c.n}]'s quote lies outside its passage")
    if {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} != {c.n for c in answer.citations}:
        problems.append("markers and citations differ")
    return problems


def comparable(answer: rag.Answer) -> dict:
    return {key: value for key, value in answer.to_dict().items() if key != "timings"}


def reply_problems(result: tuple, question: str, expected: rag.Answer) -> tuple[list[str], bool]:
    """What is wrong with the app's reply to /respond (conversation, Markdown, question box), and whether its
    Markdown is exactly the in-process reference answer's."""
    conversation, markdown, question_box = result
    if [m.get("role") for m in conversation] != ["user", "assistant"]:
        return [f"the chat holds {len(conversation)} messages, not the question and its answer"]
    page = conversation[1]["content"][0]["text"]
    problems = []
    if 'class="rag-answer' not in page or any(f"rag-{kind}" in page for kind in ("draft", "error", "stopped")):
        problems.append("not a final answer: " + re.sub(r"<[^>]+>", " ", page)[:200])
    if expected.refused and html.escape(REFUSAL[LANG[question]]) not in page:
        problems.append("a refusal without the refusal phrase")
    if question_box != "":
        problems.append("the question box was not cleared")
    return problems, markdown == expected.to_markdown()


# -- a phase ---------------------------------------------------------------------------------------------------


class Tally:
    """Everything the callers of one phase record, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {"answered": [], "refused": []}
        self.errors: list[str] = []
        self.malformed: list[str] = []
        self.differ: list[str] = []
        self.count = 0

    def record(self, seconds: float, refused: bool, problems: list[str], identical: bool, question: str) -> None:
        with self.lock:
            self.count += 1
            self.latencies["refused" if refused else "answered"].append(seconds)
            self.malformed += [f"{question!r}: {p}" for p in problems]
            if not identical:
                self.differ.append(question)

    def error(self, question: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{question!r}: {type(exc).__name__}: {str(exc)[:300]}")


def run_callers(callers: int, deadline: float | None, ask, rounds: int = 1) -> float:
    """Start `callers` threads together; each asks the questions in turn, from its own offset, until the
    deadline, or `rounds` questions when there is none. Returns the wall time until the last one finished."""
    barrier = threading.Barrier(callers)

    def caller(i: int) -> None:
        barrier.wait()
        k = i
        while True:
            ask(QUESTIONS[k % len(QUESTIONS)][0])
            k += 1
            if time.monotonic() >= deadline if deadline is not None else k - i >= rounds:
                return

    started = time.monotonic()
    threads = [threading.Thread(target=caller, args=(i,), name=f"caller-{i}") for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarise(
    name: str, callers: int, tally: Tally, wall: float, sampler: RssSampler, idle_warm_mb: float, duration: float
) -> dict:
    """The phase's figures. Memory is compared under the same conditions at both ends: the median of the first
    five samples under load against that of the last five before the deadline (when callers begin to stop);
    the idle figures, between the warm-up and the measured part and after it, are kept beside them."""
    idle_end_mb = rss_mb(sampler.pid)
    loaded = [mb for t, mb in sampler.samples if t <= duration] or [idle_warm_mb]
    warm_mb = statistics.median(loaded[:SAMPLES_AT_EACH_END])
    end_mb = statistics.median(loaded[-SAMPLES_AT_EACH_END:])
    peak = max([mb for _, mb in sampler.samples] + [idle_end_mb, idle_warm_mb])
    everything = tally.latencies["answered"] + tally.latencies["refused"]
    return {
        "phase": name,
        "callers": callers,
        "seconds": round(wall, 1),
        "answers": tally.count,
        "answered": len(tally.latencies["answered"]),
        "refused": len(tally.latencies["refused"]),
        "errors": len(tally.errors),
        "error_examples": tally.errors[:5],
        "malformed": len(tally.malformed),
        "malformed_examples": tally.malformed[:5],
        "differ_from_reference": len(tally.differ),
        "differ_examples": tally.differ[:5],
        "answers_per_second": round(tally.count / wall, 3) if wall else 0.0,
        "latency_p50": percentile(everything, 0.5),
        "latency_p95": percentile(everything, 0.95),
        "answered_p50": percentile(tally.latencies["answered"], 0.5),
        "answered_p95": percentile(tally.latencies["answered"], 0.95),
        "refused_p50": percentile(tally.latencies["refused"], 0.5),
        "rss_after_warmup_mb": round(warm_mb, 1),
        "rss_end_mb": round(end_mb, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_idle_after_warmup_mb": round(idle_warm_mb, 1),
        "rss_idle_end_mb": round(idle_end_mb, 1),
        "rss_growth": round(end_mb / warm_mb - 1, 4) if warm_mb else None,
        "rss_samples": sampler.samples,
    }


def threads_phase(cfg: rag.Config, callers: int, warmup: float, duration: float, reference: dict, texts: dict) -> dict:
    """`callers` threads calling rag.answer, in this process."""

    def ask(question: str, tally: Tally) -> None:
        started = time.perf_counter()
        try:
            answer = rag.answer(question, config=cfg)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            tally.error(question, exc)
            return
        seconds = time.perf_counter() - started
        identical = comparable(answer) == comparable(reference[question])
        tally.record(seconds, answer.refused, answer_problems(answer, question, texts), identical, question)

    warm = Tally()
    run_callers(callers, time.monotonic() + warmup, lambda q: ask(q, warm))
    warm_mb = rss_mb(os.getpid())
    log(f"threads: warm-up done ({warm.count} answers, {len(warm.errors)} errors), RSS {warm_mb:.0f} MB")
    tally = Tally()
    with RssSampler(os.getpid()) as sampler:
        wall = run_callers(callers, time.monotonic() + duration, lambda q: ask(q, tally))
    result = summarise(f"{callers} threads calling rag.answer", callers, tally, wall, sampler, warm_mb, duration)
    result["warmup"] = warmup_summary(warm)
    return result


def warmup_summary(warm: Tally) -> dict:
    return {
        "answers": warm.count,
        "errors": len(warm.errors),
        "malformed": len(warm.malformed),
        "differ_from_reference": len(warm.differ),
        "examples": (warm.errors + warm.malformed + warm.differ)[:5],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(name: str, command: list[str], ready_url: str, work: Path) -> tuple[subprocess.Popen, Path]:
    """Start a server process (the app, or the API) and return it once `ready_url` answers 200."""
    log_path = work / f"{name}.log"
    env = dict(os.environ, GRADIO_TEMP_DIR=str(work / "gradio-tmp"), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with log_path.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    while time.monotonic() - started < 300:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as response:
                if response.status == 200:
                    return process, log_path
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"{name} did not answer within 300 s:\n{log_path.read_text()[-3000:]}")


def checked_request(question: str, tally: Tally, expected: rag.Answer, request, check) -> None:
    """Time `request(question)`, check its reply with `check(reply, question, expected)`, and record both; a
    request that raises is counted as an error."""
    started = time.perf_counter()
    try:
        reply = request(question)
    except Exception as exc:  # noqa: BLE001 - every failed request is counted and reported
        tally.error(question, exc)
        return
    seconds = time.perf_counter() - started
    problems, identical = check(reply, question, expected)
    tally.record(seconds, expected.refused, problems, identical, question)


def served_phase(
    label: str, server: tuple[subprocess.Popen, Path], ask, clients: int, warmup: float, duration: float
) -> dict:
    """`clients` callers of `ask(question, tally)` against a server process, whose memory is measured; the
    process is stopped at the end, whatever happened."""
    process, log_path = server
    try:
        warm = Tally()
        run_callers(1, None, lambda q: ask(q, warm), rounds=len(QUESTIONS))  # the models load, every question once
        run_callers(clients, time.monotonic() + warmup, lambda q: ask(q, warm))
        warm_mb = rss_mb(process.pid)
        log(f"{label}: warm-up done ({warm.count} answers, {len(warm.errors)} errors), server RSS {warm_mb:.0f} MB")
        tally = Tally()
        with RssSampler(process.pid) as sampler:
            wall = run_callers(clients, time.monotonic() + duration, lambda q: ask(q, tally))
        result = summarise(label, clients, tally, wall, sampler, warm_mb, duration)
        result["warmup"] = warmup_summary(warm)
        result["app_alive"] = process.poll() is None
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if result["errors"]:
        result["app_log_tail"] = log_path.read_text()[-2000:]
    return result


def http_phase(
    cfg: rag.Config, config_file: Path, work: Path, clients: int, warmup: float, duration: float, reference: dict
) -> dict:
    """`clients` gradio_client clients of app.py running in its own process."""
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, str(ROOT / "app.py"), "--config", str(config_file), "--port", str(port)]
    server = start_server("app.py", command, url, work)
    local = threading.local()
    k = cfg.answer.passages

    def respond(question: str) -> tuple:
        if not hasattr(local, "client"):
            local.client = Client(url, verbose=False)
        local.client.reset_session()  # a new conversation, or the app would take the question as a follow-up
        return local.client.predict(question, [], "", k, "", "", "", "", api_name="/respond")

    def ask(question: str, tally: Tally) -> None:
        checked_request(question, tally, reference[question], respond, reply_problems)

    return served_phase(f"{clients} HTTP clients of app.py", server, ask, clients, warmup, duration)


def api_reply_problems(body: dict, question: str, expected: rag.Answer) -> tuple[list[str], bool]:
    """What is wrong with a /v1/chat/completions reply, and whether it is exactly the reference answer."""
    try:
        content = body["choices"][0]["message"]["content"]
        citations, refused = body["citations"], body["refused"]
    except (KeyError, IndexError, TypeError) as exc:
        return [f"not an OpenAI chat completion ({type(exc).__name__}: {exc})"], False
    problems = []
    if refused != expected.refused:
        problems.append(f"refused is {refused}, the reference {expected.refused}")
    if refused and not content.startswith(REFUSAL[LANG[question]]):
        problems.append("a refusal without the refusal phrase")
    identical = content == expected.to_markdown().rstrip("\n") and citations == [
        c.to_dict() for c in expected.citations
    ]
    return problems, identical


def api_phase(config_file: Path, work: Path, clients: int, warmup: float, duration: float, reference: dict) -> dict:
    """`clients` HTTP clients of `python -m rag serve` (the OpenAI-compatible API) in its own process."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "rag", "serve", "--config", str(config_file), "--port", str(port)]
    server = start_server("rag serve", command, url + "/health", work)

    def complete(question: str) -> dict:
        reply = httpx.post(
            url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": question}]},  # no model: the one collection
            timeout=600,
        )
        reply.raise_for_status()
        return reply.json()

    def ask(question: str, tally: Tally) -> None:
        checked_request(question, tally, reference[question], complete, api_reply_problems)

    return served_phase(f"{clients} clients of the API", server, ask, clients, warmup, duration)


# -- the run --------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prepare(work: Path, model: str) -> tuple[rag.Config, Path]:
    corpus = work / "corpus"
    shutil.copytree(SEEDS, corpus)
    config_file = work / "config.toml"
    config_file.write_text(
        f'[corpus]\npath = "{corpus}"\n\n[index]\npath = "{work / "index"}"\n\n[generation]\nmodel = "{model}"\n',
        encoding="utf-8",
    )
    return rag.load_config(config_file), config_file


def references(cfg: rag.Config) -> tuple[dict, dict, dict]:
    """Each question answered once by a single caller: the answers every later one must equal, and timings."""
    texts = {doc.source: doc.text for doc in rag.get_assistant(cfg).index().documents}
    answers, seconds = {}, {}
    for question, _ in QUESTIONS:
        started = time.perf_counter()
        answers[question] = rag.answer(question, config=cfg)
        seconds[question] = round(time.perf_counter() - started, 2)
        problems = answer_problems(answers[question], question, texts)
        if problems:
            raise SystemExit(f"the single-caller answer to {question!r} is malformed: {problems}")
    return answers, seconds, texts


def fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def render(run: dict) -> str:
    lines = [
        "## Soak (`bench/soak.py`)",
        "",
        f"- Command: `{run['command']}`; {run['date']}; run time {run['run_minutes']:.1f} min",
        f"- Machine: {run['machine']}; load average at start / end {run['load_start']} / {run['load_end']}",
        f"- Chat model: `{run['model']}` ({run['model_name']}), the rest of the default configuration "
        f"(max_tokens {run['max_tokens']}, temperature {run['temperature']:g}, llama.cpp threads: all cores); "
        f"corpus: the {run['documents']} seeds; {len(QUESTIONS)} questions (az / ru / en; "
        f"{run['answerable']} answered and {len(QUESTIONS) - run['answerable']} refused by a single caller)",
        f"- Single caller (the warm-up reference answers): answered p50 {fmt_s(run['single_answered_p50'])}, "
        f"refused p50 {fmt_s(run['single_refused_p50'])}",
        "",
        "| | " + " | ".join(phase["phase"] for phase in run["phases"]) + " |",
        "|---|" + "---|" * len(run["phases"]),
    ]
    rows = [
        ("warm-up: answers, errors, malformed, differing", warmup_cell),
        ("measured for (after the warm-up)", lambda p: f"{p['seconds']:.0f} s"),
        ("answers (answered / refused)", lambda p: f"{p['answers']} ({p['answered']} / {p['refused']})"),
        ("errors", lambda p: str(p["errors"])),
        ("malformed answers", lambda p: str(p["malformed"])),
        ("answers differing from the single caller's", lambda p: str(p["differ_from_reference"])),
        ("answers per second", lambda p: f"{p['answers_per_second']:.2f}"),
        ("latency p50 / p95, all", lambda p: f"{fmt_s(p['latency_p50'])} / {fmt_s(p['latency_p95'])}"),
        ("latency p50 / p95, answered", lambda p: f"{fmt_s(p['answered_p50'])} / {fmt_s(p['answered_p95'])}"),
        ("latency p50, refused", lambda p: fmt_s(p["refused_p50"])),
        ("RSS under load: first 5 s after the warm-up", lambda p: f"{p['rss_after_warmup_mb']:.0f} MB"),
        (
            "RSS under load: last 5 s (highest sampled)",
            lambda p: f"{p['rss_end_mb']:.0f} MB ({p['rss_peak_mb']:.0f} MB)",
        ),
        ("RSS growth under load (target < 10 %)", lambda p: f"{p['rss_growth']:+.1%}: {verdict(p['rss_growth'])}"),
        ("RSS idle: after the warm-up / at the end", idle_cell),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(phase) for phase in run["phases"]) + " |")
    lines += [
        "",
        "Memory is this process's for the threads and the app process's for the HTTP clients (the clients run in "
        "the benchmark process), sampled every second. Growth compares the first and the last 5 s of the measured "
        "part, both with every caller busy. The idle figures are taken when no answer is in flight (after the "
        "warm-up's callers stopped, and after the measured part's): the first is lower than memory under load "
        "because the buffers of the answers in flight are not in it; the second still holds what the allocator "
        "kept of them. The chat model answers one question at a time, so callers queue for it: latency under load "
        "is roughly the callers waiting times one answer, and refusals, which need no model, are fast.",
    ]
    for phase in run["phases"]:
        if phase["warmup"]["examples"]:
            lines.append(f"- {phase['phase']}, warm-up problems: " + "; ".join(phase["warmup"]["examples"]))
        for kind in ("error_examples", "malformed_examples", "differ_examples"):
            if phase[kind]:
                lines.append(f"- {phase['phase']}, {kind.replace('_', ' ')}: " + "; ".join(phase[kind]))
    return "\n".join(lines)


def idle_cell(phase: dict) -> str:
    before, after = phase["rss_idle_after_warmup_mb"], phase["rss_idle_end_mb"]
    return f"{before:.0f} MB / {after:.0f} MB ({after / before - 1:+.1%})"


def warmup_cell(phase: dict) -> str:
    warm = phase["warmup"]
    return f"{warm['answers']}, {warm['errors']}, {warm['malformed']}, {warm['differ_from_reference']}"


def verdict(growth: float | None) -> str:
    if growth is None:
        return "n/a"
    return "met" if growth < GROWTH_TARGET else f"missed by {growth - GROWTH_TARGET:.1%}"


def machine() -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{cpu}, {os.cpu_count()} cores, {ram:.1f} GB RAM, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds per phase, after its warm-up")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of full load before measuring")
    parser.add_argument("--model", default="fast", help='chat model: "fast" (default), "quality", "test", a .gguf')
    parser.add_argument("--threads", type=int, default=8, help="in-process callers of rag.answer")
    parser.add_argument("--clients", type=int, default=4, help="HTTP clients of the app")
    parser.add_argument("--phases", default="threads,http,api", help="which phases, comma-separated")
    parser.add_argument("--no-results", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not set(phases) <= {"threads", "http", "api"}:
        parser.error("--phases takes threads, http and api, comma-separated")
    started = time.monotonic()
    load_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="rag-soak-"))
    try:
        cfg, config_file = prepare(work, args.model)
        log(f"indexing the seeds in {work}")
        rag.build_index(cfg)
        log(f"reference answers with {args.model!r}")
        reference, single_seconds, texts = references(cfg)
        results = []
        if "threads" in phases:
            log(f"threads: {args.threads} callers for {args.duration:.0f} s")
            results.append(threads_phase(cfg, args.threads, args.warmup, args.duration, reference, texts))
        if "http" in phases:
            log(f"http: {args.clients} clients for {args.duration:.0f} s")
            results.append(http_phase(cfg, config_file, work, args.clients, args.warmup, args.duration, reference))
        if "api" in phases:
            log(f"api: {args.clients} clients of the OpenAI-compatible API for {args.duration:.0f} s")
            results.append(api_phase(config_file, work, args.clients, args.warmup, args.duration, reference))
        generator = rag.get_assistant(cfg).generator()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    answered = [single_seconds[q] for q, _ in QUESTIONS if not reference[q].refused]
    refused = [single_seconds[q] for q, _ in QUESTIONS if reference[q].refused]
    command = "python bench/soak.py" + "".join(
        f" {flag} {value}"
        for flag, value, default in (
            ("--duration", f"{args.duration:g}", "120"),
            ("--warmup", f"{args.warmup:g}", "30"),
            ("--model", args.model, "fast"),
            ("--threads", str(args.threads), "8"),
            ("--clients", str(args.clients), "4"),
            ("--phases", ",".join(phases), "threads,http,api"),
        )
        if value != default
    )
    run = {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_minutes": (time.monotonic() - started) / 60,
        "machine": machine(),
        "load_start": load_start,
        "load_end": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "model": args.model,
        "model_name": generator.name,
        "max_tokens": cfg.generation.max_tokens,
        "temperature": cfg.generation.temperature,
        "documents": len({src for src in texts}),
        "answerable": sum(not reference[q].refused for q, _ in QUESTIONS),
        "single_seconds": single_seconds,
        "single_answered_p50": statistics.median(answered) if answered else None,
        "single_refused_p50": statistics.median(refused) if refused else None,
        "phases": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "soak.json").write_text(json.dumps(run, indent=1, ensure_ascii=False), encoding="utf-8")
    body = render(run)
    if not args.no_results:
        write_block("SOAK", body, RESULTS)
    print(body)
    failed = any(
        phase[key] or phase["warmup"][key]
        for phase in results
        for key in ("errors", "malformed", "differ_from_reference")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
