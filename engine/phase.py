"""What every pipeline phase gets, and how it says it was skipped.

A phase is a module with one entry point, `run_phase(ctx: PhaseContext) -> dict`, that reads what earlier phases
left in the run directory and writes its own outputs there; the dict it returns (paths relative to the run
directory, a few headline figures) is kept in its done-marker, `phases/<name>.json`. A phase that cannot run
raises PhaseSkipped with a one-line reason; any other exception marks it failed."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import RunConfig
from engine.inputs.values import Section
from engine.llm.service import LLM
from engine.tracking import Tracker

if TYPE_CHECKING:
    from engine.literature import LiteratureSearch


PHASES = ("ideas", "experiments", "writeup", "review")  # the pipeline's phases, in their only order


@dataclass(frozen=True)
class PipelineSettings:
    """pipeline.* (conf/config.yaml): which phases run, which are run again although done, and whether the run
    only prints its plan (dry_run)."""

    phases: tuple[str, ...]  # always in pipeline order
    redo: tuple[str, ...]
    dry_run: bool

    @classmethod
    def from_dict(cls, raw: dict[str, Any], resolve: Any = None) -> PipelineSettings:
        s = Section(raw, "pipeline")
        redo = s.names("redo", PHASES, empty_ok=True)
        if "experiments" in redo:
            raise ValueError("pipeline.redo: the experiments cannot be redone in place (the journal is the run's "
                             "record); start a new run, or resume this one")
        phases = s.names("phases", PHASES)
        return cls(tuple(n for n in PHASES if n in phases), tuple(n for n in PHASES if n in redo),
                   s.flag("dry_run"))

    @classmethod
    def of(cls, cfg: RunConfig) -> PipelineSettings:
        return cfg.section("pipeline", cls)


class PhaseSkipped(Exception):
    """Raised by a phase that cannot run; the message is the one-line reason recorded in summary.json."""


@dataclass
class PhaseContext:
    run_dir: Path
    cfg: RunConfig
    llm: LLM | None  # None: offline (no model configured)
    tracker: Tracker
    # the run's caps and spending, an engine.budget.guard.Budget (typed Any: the budget wing imports this module);
    # None: no budget is kept, e.g. in some tests
    budget: Any = None
    _literature: Any = field(default=None, repr=False)

    @property
    def offline(self) -> bool:
        return self.llm is None

    def literature(self) -> LiteratureSearch:
        """The run's literature client, made once; its cache (literature/cache/) is shared by every phase, so a
        resumed run makes no request twice."""
        if self._literature is None:
            import os

            from engine.literature import LiteratureSearch
            from engine.literature.config import LiteratureConfig
            self._literature = LiteratureSearch(LiteratureConfig.of(self.cfg), os.environ, self.run_dir / "literature")
        return self._literature

    def done(self, name: str) -> dict[str, Any] | None:
        """The outputs of an earlier phase that finished, or None."""
        marker = read_marker(self.run_dir, name)
        return marker["outputs"] if marker and marker.get("status") == "done" else None


def marker_path(run_dir: Path, name: str) -> Path:
    return run_dir / "phases" / f"{name}.json"


def read_marker(run_dir: Path, name: str) -> dict[str, Any] | None:
    from engine.rundir import read_json
    return read_json(marker_path(run_dir, name))
