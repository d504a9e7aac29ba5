"""Questions asked in a conversation: new questions must be answered as if asked alone, follow-ups from context.

    .venv/bin/python bench/conversations.py [--model quality] [--sets seeds heldout ntrex]

In the app and the API every question after the first comes with the conversation so far, and a question taken
for a follow-up is rewritten by the chat model before the search (rag/conversation.py). Two measurements:

- **New questions in a conversation**: each question of a set asked after the one before it in its file (the
  history is that question and the answer the assistant gave it). None of them refers to the one before, so
  each answer should be the one the question gets when asked alone. Counted: questions taken for follow-ups,
  answers that differ from the answer alone, and answers given / correct against the same questions alone.
- **Follow-ups**: bench/questions/follow_ups.jsonl, 12 questions about the seeds (4 per language) written for
  this benchmark, each leaning on the question before it ("And who led the Uzbek delegation?", "O, nə vaxt zəng
  edib?"). Counted: taken for follow-ups, answered, correct.

Correct: answerable, answered, every key in the answer text, a gold article cited (as `rag eval` judges).
Answers at the configured `[answer] min_confidence`. Writes the CONVERSATIONS block of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from answers import question_set  # noqa: E402
from results_file import publish  # noqa: E402
from retrieval import git_state  # noqa: E402

import rag  # noqa: E402
from rag import evaluation  # noqa: E402

FOLLOW_UPS = ROOT / "bench" / "questions" / "follow_ups.jsonl"
SETS = ("seeds", "heldout", "ntrex")


def judged(answer, gold: list[str], keys: list[list[str]]) -> dict:
    correct = (
        bool(gold)
        and not answer.refused
        and not evaluation.missing_keys(answer.text, keys)
        and any(evaluation.in_gold(c.source, gold) for c in answer.citations)
    )
    return {"answered": not answer.refused, "correct": correct, "text": answer.text}


def conversation(question: str, answer) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]


def new_questions(assistant: rag.Assistant, items: list, model: str) -> list[dict]:
    """Each item asked alone, then after the item before it (the history: that item and its answer alone)."""
    alone = [assistant.answer(item.question, model=model) for item in items]
    rows = []
    for i, item in enumerate(items[1:], 1):
        in_chat = assistant.answer(item.question, conversation(items[i - 1].question, alone[i - 1]), model=model)
        rows.append(
            {
                "id": item.id,
                "question": item.question,
                "standalone": in_chat.standalone_question,
                "taken_for_follow_up": in_chat.standalone_question != item.question,
                "alone": judged(alone[i], item.gold, item.keys),
                "in_chat": judged(in_chat, item.gold, item.keys),
            }
        )
    return rows


def follow_ups(assistant: rag.Assistant, model: str) -> list[dict]:
    rows = []
    for line in FOLLOW_UPS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        previous = assistant.answer(record["previous"], model=model)
        answer = assistant.answer(record["q"], conversation(record["previous"], previous), model=model)
        rows.append(
            {
                "id": record["id"],
                "question": record["q"],
                "standalone": answer.standalone_question,
                "taken_for_follow_up": answer.standalone_question != record["q"],
                "in_chat": judged(answer, record["gold"], record["keys"]),
            }
        )
    return rows


def render(result: dict) -> list[str]:
    lines = [
        "## Questions in a conversation (`bench/conversations.py`)",
        "",
        f"- Command: `{result['command']}`",
        f"- Run {result['date']}; {result['minutes']:.1f} min; chat model {result['model']}; code {result['git']}; "
        f"min_confidence {result['min_confidence']:.2f}",
        "",
        "New questions asked after the question before them in their file (none refers to it):",
        "",
        "| set | questions | taken for follow-ups | answer differs from alone | answered alone / in chat "
        "| correct alone / in chat |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in result["new_questions"].items():
        lines.append(
            f"| {name} | {len(rows)} | {sum(r['taken_for_follow_up'] for r in rows)} "
            f"| {sum(r['alone']['text'] != r['in_chat']['text'] for r in rows)} "
            f"| {sum(r['alone']['answered'] for r in rows)} / {sum(r['in_chat']['answered'] for r in rows)} "
            f"| {sum(r['alone']['correct'] for r in rows)} / {sum(r['in_chat']['correct'] for r in rows)} |"
        )
    rows = result["follow_ups"]
    lines += [
        "",
        f"Follow-ups (bench/questions/follow_ups.jsonl, {len(rows)} questions): taken for follow-ups "
        f"{sum(r['taken_for_follow_up'] for r in rows)}, answered {sum(r['in_chat']['answered'] for r in rows)}, "
        f"correct {sum(r['in_chat']['correct'] for r in rows)}.",
        "",
        "| id | follow-up | understood as | answered | correct |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        understood = r["standalone"] if r["taken_for_follow_up"] else "(as asked)"
        lines.append(
            f"| {r['id']} | {r['question']} | {understood[:140]} | {'yes' if r['in_chat']['answered'] else 'no'} "
            f"| {'yes' if r['in_chat']['correct'] else 'no'} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="quality")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "conversations.json")
    args = parser.parse_args()
    started = time.perf_counter()
    config = rag.load_config(ROOT / "config.toml").with_overrides(generation={"model": args.model})
    seeds = rag.Assistant(config)  # seeds dev, held-out seeds and the follow-ups are asked over seeds/
    seeds.build_index()
    result: dict = {"new_questions": {}}
    for name in args.sets:
        cfg, items = question_set(name, config)
        assistant = seeds
        if name == "ntrex":  # its own corpus, with the same embedding and chat models
            assistant = rag.Assistant(cfg, embedder=seeds.embedder, generator=seeds.generator(args.model))
            assistant.build_index()
        result["new_questions"][name] = new_questions(assistant, items, args.model)
        print(f"{name}: {len(items)} questions", file=sys.stderr, flush=True)
    result["follow_ups"] = follow_ups(seeds, args.model)
    result.update(
        command="python bench/conversations.py" + (f" --sets {' '.join(args.sets)}" if args.sets != list(SETS) else ""),
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        minutes=(time.perf_counter() - started) / 60,
        model=args.model,
        git=git_state(),
        min_confidence=config.answer.min_confidence,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    publish("CONVERSATIONS", render(result), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
