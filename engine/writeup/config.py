"""Settings of the writeup, built from the resolved `writeup` config (conf/writeup/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    latex_timeout_s: float

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: object = None) -> WriteupConfig:
        fmt = str(raw["format"])
        if fmt not in FORMATS:
            raise ValueError(f"writeup.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        limit = raw.get("page_limit")
        cfg = cls(fmt, FORMATS[fmt] if limit is None else int(limit), int(raw["max_figures"]),
                  int(raw["num_cite_rounds"]), int(raw["compile_rounds"]), int(raw["plot_retries"]),
                  float(raw["latex_timeout_s"]))
        if cfg.page_limit < 1 or cfg.max_figures < 1 or cfg.num_cite_rounds < 0 or cfg.compile_rounds < 0 \
                or cfg.plot_retries < 0 or cfg.latex_timeout_s <= 0:
            raise ValueError("writeup.page_limit and max_figures must be >= 1; num_cite_rounds, compile_rounds "
                             "and plot_retries >= 0; latex_timeout_s > 0")
        return cfg

    @classmethod
    def of(cls, cfg: RunConfig) -> WriteupConfig:
        return cfg.section("writeup", cls)
