"""Reading a model's answer: the ``<answer>`` tag, option letters, numbers and plain text.

Pure functions of the text: none of them raises on model output. The rules are listed in
``docs/rewards.md`` (Reading the answer).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

_OPEN_ANSWER, _CLOSE_ANSWER = "<answer>", "</answer>"
_BARE_LETTER_RE = re.compile(r"\(?([A-Za-z])\)?[.:]?")
_LETTER_THEN_TEXT_RE = re.compile(r"\(?([A-Za-z])[.):]\s")
_OPTION_PREFIX_RE = re.compile(r"\s*\(?([A-Za-z])[.):]\s*")
_TRAILING_PUNCT = ".!?,;:"

_NUMBER_WORDS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen"  # noqa: SIM905
        " fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_HEDGE_RE = re.compile(
    r"(?:(?:about|approximately|approx\.?|around|roughly|nearly|almost)\s+|[~≈]\s*)"
)
_NUMERAL_RE = re.compile(
    r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?"
    r"|(?P<word>[^\W\d_]+)"
)
# After the number only unit words may follow ("3.5 m", "4 chairs", "50%"). Words that would change
# the value or make it a range ("twenty one", "3 to 4", "2 and a half") reject the answer instead.
_UNIT_RE = re.compile(r"°?([^\W\d_]*)\.?|%")
_SCALE_WORDS = {"hundred", "thousand", "million", "billion", "half", "quarter", "point"}
_NOT_UNITS = frozenset(_NUMBER_WORDS) | _SCALE_WORDS | {"to", "or", "and"}


def extract_answer(text: str) -> str | None:
    """The stripped content of the first ``<answer>…</answer>`` in ``text``; ``None`` if none."""
    # str.find keeps this linear on megabytes of unclosed tags, where a lazy regex is quadratic.
    start = text.find(_OPEN_ANSWER)
    if start < 0:
        return None
    end = text.find(_CLOSE_ANSWER, start + len(_OPEN_ANSWER))
    return None if end < 0 else text[start + len(_OPEN_ANSWER) : end].strip()


def normalize_text(value: Any) -> str:
    """``value`` as text, case-folded, whitespace-collapsed, without trailing punctuation."""
    return " ".join(str(value).split()).casefold().rstrip(_TRAILING_PUNCT).strip()


def _option_letters(options: Sequence[str]) -> list[tuple[str, str]]:
    """(letter, text without its prefix) per option; unprefixed options are lettered A, B, …"""
    lettered = []
    for i, option in enumerate(options):
        prefix = _OPTION_PREFIX_RE.match(option)
        if prefix:
            lettered.append((prefix.group(1).upper(), option[prefix.end() :]))
        else:
            lettered.append((chr(ord("A") + i), option))
    return lettered


def normalize_choice(text: str, options: Sequence[str] = ()) -> str | None:
    """The option letter a multiple-choice answer names, upper case, or ``None``.

    Accepts ``B``, ``(B)``, ``B.``, ``B) sofa``, ``b`` (surrounding spaces ignored) and, when
    ``options`` are given, an option's exact text (case-insensitive, with or without its ``A.``
    prefix). With ``options``, a letter that is not one of theirs gives ``None``.
    """
    stripped = text.strip()
    lettered = _option_letters(options)
    match = _BARE_LETTER_RE.fullmatch(stripped) or _LETTER_THEN_TEXT_RE.match(stripped)
    if match:
        letter = match.group(1).upper()
        if not lettered or letter in {option_letter for option_letter, _ in lettered}:
            return letter
        return None
    wanted = normalize_text(stripped)
    if not wanted:
        return None
    for (letter, body), option in zip(lettered, options, strict=True):
        if wanted in (normalize_text(body), normalize_text(option)):
            return letter
    return None


def parse_number(text: str) -> float | None:
    """The number an answer states, or ``None``.

    Accepts ints, floats, negatives, thousands separators (``1,234``), a trailing unit word
    (``3.5m``, ``3.5 meters``; units are not converted), a leading hedge (``about 4``) and the
    English words zero to twenty. Anything else, or a non-finite value, gives ``None``.
    """
    cleaned = text.strip().replace("\u2212", "-").rstrip(_TRAILING_PUNCT).strip()
    hedge = _HEDGE_RE.match(cleaned)
    if hedge:
        cleaned = cleaned[hedge.end() :]
    match = _NUMERAL_RE.match(cleaned)
    if not match:
        return None
    for token in cleaned[match.end() :].split():
        unit = _UNIT_RE.fullmatch(token)
        if not unit or (unit.group(1) or "").casefold() in _NOT_UNITS:
            return None
    word = match.group("word")
    if word is not None:
        value = _NUMBER_WORDS.get(word.casefold())
        return None if value is None else float(value)
    value = float(match.group(0).replace(",", ""))
    return value if math.isfinite(value) else None


__all__ = ["extract_answer", "normalize_choice", "normalize_text", "parse_number"]
