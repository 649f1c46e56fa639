"""Instructions inside a paper's visible text: passages that tell the reader to ignore its instructions, address
an AI or a reviewer model, carry chat role markers, or ask for a score or a decision. They are flagged, never
removed (a paper on prompt injection quotes such text), and the review says so."""
from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERNS: list[tuple[str, str]] = [
    ("tells the reader to ignore its instructions",
     r"\b(ignore|disregard|forget|override)\s+(all\s+|any\s+)?(of\s+)?(the\s+|your\s+)?(previous|prior|above|earlier|"
     r"preceding|system|original|other)\s+(instructions?|prompts?|directions|rules|guidelines)"),
    ("addresses an AI or a reviewer model",
     r"\bif\s+you\s+are\s+(an?\s+)?(ai|llm|large\s+language\s+model|language\s+model|automated|automatic)\b"),
    ("addresses an AI or a reviewer model",
     r"\bas\s+(an?|the)\s+(ai\s+|llm\s+|language\s+model\s+|automated\s+|automatic\s+)?(reviewer|assistant|model|"
     r"system)\b[^.\n]{0,40}\byou\s+(must|should|will|need\s+to|are\s+(instructed|required|asked))\b"),
    ("addresses an AI or a reviewer model",
     r"\b(note|message|instructions?)\s+(to|for)\s+(the\s+|any\s+|all\s+)?(ai|llm|automated|machine|language\s+model)"
     r"[\s-]*(based\s+)?reviewers?\b"),
    ("chat role marker",
     r"<\|\s*(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\s*\|>|\[/?INST\]|<</?SYS>>|"
     r"</?(system|assistant)>|^\s*#{2,}\s*(system|instruction|response)\s*:?\s*$|"
     r"^\s*(system|developer)\s+(prompt|message)\s*:"),
    ("asks for a score or a decision",
     r"\b(give|assign|rate|score|award)\s+(this\s+|the\s+)?(paper|submission|manuscript|work)\s+(an?\s+)?"
     r"(overall\s+)?(score\s+|rating\s+)?(of\s+)?(\d+|high|highest|top|perfect|maximum|positive|strong)"),
    ("asks for a score or a decision",
     r"\b(must|should)\s+(be\s+)?accept(ed)?\s+this\s+(paper|submission|manuscript)\b|\brecommend(ed)?\s+(a\s+)?"
     r"(strong\s+|clear\s+)?accept(ance)?\s+(of\s+|for\s+)?(this|the)\s+(paper|submission|manuscript)\b|"
     r"\baccept\s+this\s+(paper|submission|manuscript)\b"),
    ("asks for a score or a decision",
     r"\b(do\s+not|don'?t|never)\s+(mention|highlight|point\s+out|list|report)\s+(any\s+)?(weakness(es)?|"
     r"negatives?|flaws?|limitations?)|\bonly\s+(write|give|output)\s+(a\s+)?(positive|favou?rable)\s+review"),
]
_COMPILED = [(why, re.compile(p, re.IGNORECASE | re.MULTILINE)) for why, p in _PATTERNS]
CONTEXT = 120  # characters shown around a match


@dataclass(frozen=True)
class Suspicious:
    page: int | None  # 1-based; None for text that is not on a page (metadata)
    text: str  # the match with some context, one line
    why: str

    def to_dict(self) -> dict[str, object]:
        return {"page": self.page, "text": self.text, "why": self.why}


def find_instructions(text: str, page: int | None = None) -> list[Suspicious]:
    """The passages of `text` that read as instructions to a model, each once (overlapping matches merged)."""
    found: list[tuple[int, int, str]] = []
    for why, pattern in _COMPILED:
        for m in pattern.finditer(text):
            if not any(start <= m.start() < end for start, end, _ in found):
                found.append((m.start(), m.end(), why))
    out = []
    for start, end, why in sorted(found):
        a, b = max(0, start - CONTEXT // 2), min(len(text), end + CONTEXT // 2)
        snippet = " ".join(text[a:b].split())
        out.append(Suspicious(page, ("..." if a else "") + snippet + ("..." if b < len(text) else ""), why))
    return out
