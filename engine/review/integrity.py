"""What the loader found in a paper's PDF, written into its review: `hidden_text` and `suspicious_text` (lists of
{page, text, why}), a weakness that states each finding, and `integrity_flag` (null for a clean paper). With
`review.on_hidden_text` = reject (the default) a paper with hidden text gets Decision Reject; with flag, the
decision stays the reviewer's. Suspicious visible text is only stated: a paper may quote such text."""
from __future__ import annotations

from typing import Any

from engine.review.config import HIDDEN_TEXT_POLICIES
from engine.review.paper import PaperText


def with_findings(review: dict[str, Any], paper: PaperText, on_hidden_text: str) -> dict[str, Any]:
    """The review with the paper's findings added (a new dict; the ensemble's members are left as they are)."""
    if on_hidden_text not in HIDDEN_TEXT_POLICIES:
        raise ValueError(f"review.on_hidden_text must be one of {HIDDEN_TEXT_POLICIES}, got {on_hidden_text!r}")
    out = dict(review)
    out["hidden_text"] = [h.to_dict() for h in paper.hidden]
    out["suspicious_text"] = [s.to_dict() for s in paper.suspicious]
    notes, flags = [], []
    if paper.hidden:
        where = _where(paper.hidden)
        notes.append(f"The PDF contains hidden text that a reader does not see ({where}); it was removed before "
                     "review and is listed in hidden_text.")
        flags.append(f"hidden text ({len(paper.hidden)} passage{'s' if len(paper.hidden) > 1 else ''}: {where})")
    if paper.suspicious:
        where = _where(paper.suspicious)
        notes.append(f"The paper's visible text contains passages that read as instructions to an AI reviewer "
                     f"({where}); they were read as part of the paper, not followed, and are listed in "
                     "suspicious_text.")
        flags.append(f"instructions to a reviewer model in the visible text ({where})")
    if not notes:
        out["integrity_flag"] = None
        return out
    weaknesses = out.get("Weaknesses")
    weaknesses = list(weaknesses) if isinstance(weaknesses, list) else [weaknesses] if weaknesses else []
    out["Weaknesses"] = notes + weaknesses
    if paper.hidden and on_hidden_text == "reject":
        out["Decision"] = "Reject"
        flags[0] += "; rejected (review.on_hidden_text=reject)"
    out["integrity_flag"] = "; ".join(flags)
    return out


def _where(items: list[Any]) -> str:
    """'white text on a white background on page 2; annotation (Text) on page 3' (kinds in order, pages merged)."""
    pages: dict[str, list[int | None]] = {}
    for item in items:
        pages.setdefault(item.why, []).append(item.page)
    parts = []
    for why, on in pages.items():
        numbers = sorted({p for p in on if p is not None})
        where = f" on page{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}" if numbers else ""
        parts.append(why + where)
    return "; ".join(parts)
