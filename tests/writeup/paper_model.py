"""A scripted writeup model for the fake LLM server: it answers the citation rounds, writes a draft whose
sections a test can plant mistakes in, hands each section back unchanged when asked to refine it, and answers a
correction request with `fix(latex)`."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

FIGURE = (r"\begin{figure}[t]\centering\includegraphics[width=0.6\linewidth]{figures/seeds_initial.png}"
          r"\caption{Seed evaluation of the first stage.}\label{fig:seeds_initial}\end{figure}")

CLEAN = {
    "title": "Weight Decay and the Onset of Grokking in a Small Transformer",
    "abstract": "We train a small Transformer on modular addition and record the first step at which validation "
                "accuracy reaches 99\\%. The best program needed 150 steps, the same as the baseline.",
    "introduction": "Grokking, delayed generalisation long after the training data is fit, was first reported by "
                    "\\citet{power2022grokking}. We ask how the optimiser's settings change its onset.",
    "related_work": "Mechanistic accounts of grokking \\citep{nanda2023progress} explain the late generalisation "
                    "as the slow formation of a structured circuit.",
    "background": "A model groks when its validation accuracy rises long after its training accuracy.",
    "method": "An automated search changes one hyperparameter at a time and keeps the best program.",
    "experimental_setup": "We train a 2-layer Transformer of width 32 with 4 heads on addition modulo 23 for "
                          "150 steps, with learning rate 0.003, weight decay 1.0 and batch size 128.",
    "results": "Figure~\\ref{fig:seeds_initial} shows the seed evaluation of the first stage.\n" + FIGURE + "\n"
               "Over 2 seeds the best program needed 150 $\\pm$ 0 steps. Its final validation accuracy was "
               "0.0038, so the runs did not generalise within the step budget.",
    "conclusion": "Within 150 steps no setting tried made the model grok; longer runs are the next step.",
}


def text_of(body: dict) -> str:
    parts = []
    for m in body["messages"]:
        content = m["content"]
        parts += [content] if isinstance(content, str) else [c.get("text", "") for c in content
                                                             if isinstance(c, dict)]
    return "\n".join(parts)


@dataclass
class PaperModel:
    draft: dict[str, str] = field(default_factory=lambda: dict(CLEAN))
    fix: Callable[[str], str] = lambda latex: latex
    searches: int = 1  # citation rounds before the model says done
    calls: dict[str, list[str]] = field(default_factory=dict)  # tool name -> prompt texts

    def __call__(self, path: str, body: dict) -> dict:
        tool = body["tools"][0]["function"]["name"]
        text = text_of(body)
        self.calls.setdefault(tool, []).append(text)
        if tool == "next_search":
            if len(self.calls[tool]) > self.searches:
                return self.answer(tool, {"done": True})
            return self.answer(tool, {"done": False, "missing": "the paper that reported grokking",
                                      "query": "grokking small algorithmic datasets"})
        if tool == "pick_papers":
            return self.answer(tool, {"indices": [0, 1, 9], "reason": "the original report and a mechanism"})
        if tool == "write_paper":
            return self.answer(tool, self.draft)
        if tool == "revise_section":
            name = re.search(r'Revise the section "([^"]+)" only', text).group(1)
            key = "abstract" if name == "Abstract" else {
                "Introduction": "introduction", "Related Work": "related_work", "Background": "background",
                "Method": "method", "Experimental Setup": "experimental_setup", "Results": "results",
                "Conclusions and Future Work": "conclusion"}[name]
            return self.answer(tool, {"latex": self.draft[key], "changes": "none"})
        if tool == "fixed_paper":
            latex = text.split("## The LaTeX\n", 1)[1]
            return self.answer(tool, {"latex": self.fix(latex), "changes": "fixed"})
        if tool == "figure_notes":
            return self.answer(tool, {"shows": "Bars of the seed means, one per metric.", "caption_ok": True,
                                      "issues": "The y axis label is cut off (VISION-NOTE)."})
        raise AssertionError(f"unexpected tool {tool}")

    @staticmethod
    def answer(tool: str, data: dict) -> dict:
        return {"tool": {"name": tool, "input": data}}
