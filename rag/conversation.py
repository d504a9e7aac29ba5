"""Follow-up questions: "And what did Kyrgyzstan say?" means nothing to a search engine on its own.

A question that leans on the conversation is rewritten into a standalone one before retrieval, by the chat
model, and the rewrite is checked: it must keep the follow-up's names and numbers and stay short. When the
model's rewrite fails the check, the previous question is appended to the follow-up instead, which retrieval
handles well (the dense model reads both).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .grounding import numbers_in, question_names
from .lexical import name_terms
from .prompts import rewrite_messages

# Words that mark a question as leaning on what was said before, in the three languages.
_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|and what|then|а|и|а что|ещё|еще|также|bəs|və|həmçinin|onda)\b"
    r"|\b(he|she|it|they|him|her|them|his|their|this|that|these|those|there|"
    r"он|она|оно|они|его|её|ее|их|ему|ей|им|этот|эта|это|эти|там|"
    r"o|onun|onlar|onların|ona|bu|həmin|orada)\b",
    re.IGNORECASE,
)
_SHORT = 6  # words; a question this short after another one is almost always a follow-up


def is_follow_up(question: str, history: list[dict]) -> bool:
    if not any(turn.get("role") == "user" for turn in history):
        return False
    return len(question.split()) <= _SHORT or bool(_FOLLOW_UP.search(question))


def previous_question(history: list[dict]) -> str:
    for turn in reversed(history):
        if turn.get("role") == "user" and str(turn.get("content", "")).strip():
            return str(turn["content"]).strip()
    return ""


def acceptable_rewrite(rewrite: str, question: str) -> bool:
    """The rewrite keeps the follow-up's names and numbers, is one line and not much longer than needed."""
    if not rewrite or "\n" in rewrite.strip() or len(rewrite) > 3 * len(question) + 200:
        return False
    rewrite_terms = name_terms(rewrite)
    for name in question_names(question):
        terms = name_terms(name)
        if terms and not terms & rewrite_terms:
            return False
    return numbers_in(question) <= numbers_in(rewrite)


def standalone_question(question: str, history: list[dict] | None, generate: Callable[[list[dict]], str]) -> str:
    """The question made standalone using the conversation; the question itself when it needs no context."""
    history = history or []
    if not is_follow_up(question, history):
        return question
    previous = previous_question(history)
    rewrite = generate(rewrite_messages(question, history)).strip().strip('"“”«»').strip()
    rewrite = re.sub(r"^(standalone question|question|вопрос|sual)\s*:\s*", "", rewrite, flags=re.IGNORECASE)
    if acceptable_rewrite(rewrite, question):
        return rewrite
    return f"{question} ({previous})" if previous else question
