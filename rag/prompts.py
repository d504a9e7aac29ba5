"""Prompts and the fixed phrases of the assistant, as plain constants (tests check the phrases).

Prompts are short on purpose: on two laptop cores the 1.5B model reads about 170 tokens per second, so every
sentence of instructions costs time before the first word of the answer.
"""

from __future__ import annotations

LANGUAGE_NAMES = {"az": "Azerbaijani", "ru": "Russian", "en": "English"}

# Said when the documents do not hold the answer. One fixed phrase per language, never a model's words.
REFUSAL = {
    "en": "I found no answer to this question in the documents.",
    "az": "Sənədlərdə bu sualın cavabını tapmadım.",
    "ru": "Я не нашёл ответа на этот вопрос в документах.",
}
# Introduces the evidence quoted verbatim when the model's answer could not be verified.
EXTRACTIVE_INTRO = {
    "en": "The documents say:",
    "az": "Sənədlərdə deyilir:",
    "ru": "В документах сказано:",
}
# Label of the passages offered after a refusal.
RELATED_LABEL = {
    "en": "Closest matches (not confirmed as an answer):",
    "az": "Ən yaxın mətnlər (cavab kimi təsdiqlənməyib):",
    "ru": "Ближайшие фрагменты (не подтверждены как ответ):",
}
# Marks a translation shown under a quote (the app and `rag ask`): the reader must know it is not the source.
MACHINE_TRANSLATION = {
    "en": "machine translation",
    "az": "maşın tərcüməsi",
    "ru": "машинный перевод",
}
# Marks a quote in another language that comes without a translation (none passed the check, or the chat model
# is not asked for that language), so that the reader knows the quote's language is no oversight.
NO_TRANSLATION = {
    "en": "no checked machine translation",
    "az": "yoxlanılmış maşın tərcüməsi yoxdur",
    "ru": "проверенного машинного перевода нет",
}

# The model only translates: it never writes an answer of its own (see grounding.py). The quote is data, not
# instructions, and a quote that carries instructions never becomes evidence in the first place (evidence.py).
TRANSLATE_SYSTEM = (
    "Translate the user's text from {source} into {target}. Keep every name, number and date. "
    "Reply with the translation only."
)

REWRITE_SYSTEM = (
    "Rewrite the last question of the conversation as one standalone question that can be understood without "
    "the conversation. Keep its language. Reply with the question only."
)


def language_name(lang: str) -> str:
    return LANGUAGE_NAMES.get(lang, "the language of the question")


def translate_messages(text: str, source_lang: str, target_lang: str) -> list[dict]:
    return [
        {
            "role": "system",
            "content": TRANSLATE_SYSTEM.format(source=language_name(source_lang), target=language_name(target_lang)),
        },
        {"role": "user", "content": text},
    ]


def rewrite_messages(question: str, history: list[dict]) -> list[dict]:
    turns = []
    for turn in history[-4:]:  # the last two exchanges carry the context; more only costs prompt time
        role = "User" if turn.get("role") == "user" else "Assistant"
        turns.append(f"{role}: {str(turn.get('content', ''))[:400]}")
    turns.append(f"User: {question}")
    return [
        {"role": "system", "content": REWRITE_SYSTEM},
        {"role": "user", "content": "\n".join(turns) + "\n\nStandalone question:"},
    ]
