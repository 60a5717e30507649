"""Text cut into sentences, so speech can start after the first one is rendered.

A sentence ends at . ! ? (and any closing quote or bracket) followed by white space. A long
run without one is cut at , ; : so that no piece is far past MAX_PIECE characters: the first
audio waits for the first piece only.
"""
from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
MAX_PIECE = 160


def split_sentences(text: str) -> list[str]:
    """The pieces of `text` in order, white space collapsed, none empty."""
    pieces = []
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = " ".join(sentence.split())
        if len(sentence) <= MAX_PIECE:
            if sentence:
                pieces.append(sentence)
            continue
        current = ""
        for clause in _CLAUSE_END.split(sentence):
            if current and len(current) + 1 + len(clause) > MAX_PIECE:
                pieces.append(current)
                current = clause
            else:
                current = f"{current} {clause}" if current else clause
        pieces.append(current)
    return pieces
