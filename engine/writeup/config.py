"""Settings of the writeup, built from the resolved `writeup` config (conf/writeup/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.inputs.values import Section

if TYPE_CHECKING:
    from engine.config import RunConfig

FORMATS = {"workshop": 4, "conference": 8}  # format -> pages of main text


@dataclass(frozen=True)
class WriteupConfig:
    format: str
    page_limit: int  # pages of main text (references and appendix excluded)
    max_figures: int
    num_cite_rounds: int
    compile_rounds: int
    plot_retries: int
    latex_timeout_s: float | None  # per pdflatex / bibtex call (None: no limit)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: object = None) -> WriteupConfig:
        s = Section(raw, "writeup")
        fmt = s.choice("format", tuple(FORMATS))
        limit = s.integer("page_limit", at_least=1, null="the format's: 4 or 8 pages")
        return cls(fmt, FORMATS[fmt] if limit is None else limit, s.integer("max_figures", at_least=1),
                   s.integer("num_cite_rounds", at_least=0), s.integer("compile_rounds", at_least=0),
                   s.integer("plot_retries", at_least=0), s.number("latex_timeout_s", above=0, null="no limit"))

    @classmethod
    def of(cls, cfg: RunConfig) -> WriteupConfig:
        return cfg.section("writeup", cls)
