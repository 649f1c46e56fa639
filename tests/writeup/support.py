"""Shared pieces of the writeup tests: a copy of a real finished run (the grokking smoke profile, four stages,
offline; trimmed to the files the writeup reads), a PhaseContext built from the real Hydra config, fake
literature, and a stand-in for the figures module that copies the run's seed plots."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engine.config import RunConfig, build, shipped_llm
from engine.llm.models import spec_from_dict
from engine.llm.service import LLM
from engine.phase import PhaseContext
from engine.tracking import NullTracker
from tests.scripted_model import BASE_URL, ScriptedModel

REPO = Path(__file__).resolve().parents[2]
SMOKE_RUN = Path(__file__).resolve().parent / "fixtures" / "smoke_run"
ENV = {"OPENAI_API_KEY": "test-key"}


def smoke_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(SMOKE_RUN, dest)
    return dest


# summary.json `result` and `ablations` as issue 20 specifies them, for the smoke run (its own records predate
# them): made-up values (the smoke run's every node gives 150) that make relative claims worth checking
RESULT = {"node_id": "76fbfbfa5f89", "step": 0, "stage": "initial", "metric": "step_val_acc_99", "mean": 137.5,
          "stderr": 7.217, "ci95": [106.4, 168.6], "n": 3, "seeds": [2, 3, 4], "selection_seeds": [0, 1],
          "chosen_by": "lowest seed mean of the decided stages' best nodes",
          "baseline": {"mean": 150.0, "stderr": 0.0, "ci95": [150.0, 150.0], "n": 3},
          "improvement": {"mean": -12.5, "stderr": 7.217, "ci95": [-43.55, 18.55], "n": 3, "significant": False,
                          "text": "no significant difference from the baseline: seed by seed, the result's "
                                  "step_val_acc_99 is 12.5 lower than the baseline's on average "
                                  "(95% CI [-43.55, +18.55], 3 seeds)"},
          "held_out": {"test_acc": {"mean": 0.0125, "stderr": 0.0031, "ci95": [-0.0008, 0.0258]}}}
ABLATIONS = [{"name": "one_layer", "node_id": "d0f3c6bee87e", "change": {"num_layers": 1}, "mean": 150.0,
              "stderr": 0.0, "n": 3, "delta": 12.5, "ci95_delta": [-18.5, 43.5], "significant": False,
              "verdict": "no clear effect"},
             {"name": "no_weight_decay", "node_id": "671068824b92", "change": {"weight_decay": 0.0}, "mean": 175.0,
              "stderr": 12.5, "n": 3, "delta": 37.5, "ci95_delta": [3.1, 71.9], "significant": True,
              "verdict": "hurts"}]


def with_outcome(run_dir: Path) -> Path:
    """The run with `result` and `ablations` in its summary.json."""
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps(summary | {"result": RESULT, "ablations": ABLATIONS}))
    return run_dir


def run_config(*overrides: str, own_format: Path | None = None) -> RunConfig:
    """The resolved config of `+topic=grokking`; with `own_format`, a template folder without latex/ (so the
    writeup uses our own LaTeX format)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        raw = OmegaConf.to_container(compose("config", overrides=["+topic=grokking", "tracking=none", *overrides]),
                                     resolve=True)
    cfg = build(raw, REPO)
    if own_format is not None:
        own_format.mkdir(parents=True, exist_ok=True)
        cfg = dataclasses.replace(cfg, topic=dataclasses.replace(cfg.topic, path=own_format))
    return cfg


def context(run_dir: Path, cfg: RunConfig, llm: LLM | None = None, literature: object = None) -> PhaseContext:
    return PhaseContext(run_dir, cfg, llm, NullTracker(), _literature=literature)


def fake_llm(model: ScriptedModel, vision: bool = False) -> LLM:
    """The writeup's roles (and vision, if asked) answered by `model`, in this process."""
    spec = spec_from_dict({"name": "fake-model", "base_url": BASE_URL, "vision": vision})
    roles = {"writeup": spec, "citation": spec} | ({"vision": spec} if vision else {})
    return LLM(roles, shipped_llm(max_retries=0, timeout_s=30), ENV, providers=model.providers(*roles, spec=spec))


@dataclass(frozen=True)
class FakePaper:
    """The parts of engine.literature.Paper the writeup uses."""
    title: str
    authors: tuple[str, ...]
    year: int
    venue: str = "arXiv"
    doi: str | None = None
    arxiv_id: str | None = None

    @property
    def bibtex_key(self) -> str:
        return re.sub(r"[^a-z]", "", self.authors[0].split()[-1].lower()) + str(self.year) + \
            re.sub(r"[^a-z]", "", self.title.split()[0].lower())

    def bibtex(self) -> str:
        authors = " and ".join(self.authors)
        return (f"@article{{{self.bibtex_key},\n  title = {{{self.title}}},\n  author = {{{authors}}},"
                f"\n  journal = {{{self.venue}}},\n  year = {{{self.year}}}\n}}")

    def prompt_text(self) -> str:
        return f"{self.title}\n{', '.join(self.authors)}. {self.venue}, {self.year}."

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PAPERS = [FakePaper("Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets",
                    ("Alethea Power", "Yuri Burda"), 2022, arxiv_id="2201.02177"),
          FakePaper("Progress Measures for Grokking via Mechanistic Interpretability",
                    ("Neel Nanda", "Lawrence Chan"), 2023, arxiv_id="2301.05217"),
          FakePaper("Decoupled Weight Decay Regularization", ("Ilya Loshchilov", "Frank Hutter"), 2019)]


@dataclass
class FakeLiterature:
    papers: list = field(default_factory=lambda: list(PAPERS))
    error: Exception | None = None
    queries: list[str] = field(default_factory=list)

    def search(self, query: str, limit: int | None = None) -> list:
        self.queries.append(query)
        if self.error is not None:
            raise self.error
        return self.papers[:limit]


@dataclass(frozen=True)
class Figure:
    path: str
    caption: str
    label: str
    source: str
    data: list[str]


def install_fake_figures(monkeypatch) -> None:
    """engine.writeup.figures replaced by a stand-in: the run's seed plots, copied to paper/figures/."""
    def make_figures(ctx, out_dir: Path) -> list[Figure]:
        out_dir.mkdir(parents=True, exist_ok=True)
        figs = []
        for stage in ("initial", "ablations"):
            shutil.copy(ctx.run_dir / "stages" / stage / "seeds.png", out_dir / f"seeds_{stage}.png")
            figs.append(Figure(f"paper/figures/seeds_{stage}.png", f"Seed evaluation of stage {stage}: mean and "
                               "standard error over 2 seeds.", f"fig:seeds_{stage}", "engine",
                               [f"stages/{stage}/summary.json"]))
        return figs

    module = types.ModuleType("engine.writeup.figures")
    module.Figure, module.make_figures = Figure, make_figures
    monkeypatch.setitem(sys.modules, "engine.writeup.figures", module)
