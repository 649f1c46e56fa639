"""The ideas phase: research ideas for the run's topic, their novelty against the literature, and the one the
experiments test.

Where the ideas come from:
  ideas.load=PATH          a v1 seed_ideas.json or v2 ideas JSON, used as written (load.py)
  a model (role ideation)  ideas.num_ideas ideas drafted and refined from the topic file or the template's task,
                           code and seed ideas (generate.py); ideas that drift off the topic are dropped
  no model, a template     the template's seed ideas, labelled as such
  no model, no template    an EngineError: ideation from a topic file needs a model
Each idea's novelty is checked with the model and the literature (novelty.py) unless ideas.check_novelty is
false, there is no model, or the idea already carries a decision (a loaded file's `novel` or `novelty`).

Outputs in the run directory:
  ideas.json  {"chosen": Name,
               "ideas": [{Name, Title, Short Hypothesis, Related Work, Abstract, Experiments,
                          Risk Factors and Limitations, Experiment, Interestingness, Feasibility, Novelty,
                          novel: true|false|null,
                          novelty: {decision: "novel"|"not novel"|"unchecked", reason, rounds, queries,
                                    papers: [Paper.to_dict(), ...]},
                          generated_by, source, ...any other key a loaded file had}],
               "dropped": [{slot, Name, Title, reason, idea}]}
  idea.json   the chosen idea (one entry of "ideas")
  ideas/      per-idea checkpoints (state.py), so a rerun after a kill repeats no finished model call or query
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.experiments.template import Template, load_template
from engine.ideas.config import IdeasConfig
from engine.ideas.generate import SEED, Ideation, NameRegister
from engine.ideas.library import Library
from engine.ideas.load import ideas_from_data, load_ideas
from engine.ideas.novelty import check_novelty, unchecked
from engine.ideas.output import choose, table_rows
from engine.ideas.pool import Pool
from engine.ideas.state import Checkpoints
from engine.ideas.topic import Topic, parse_topic_file, topic_from_template
from engine.llm.service import LLM, CallContext, LLMCallError
from engine.rundir import write_json

if TYPE_CHECKING:  # engine.phase imports engine.config, which imports this package's config
    from engine.phase import PhaseContext

log = logging.getLogger(__name__)

ROLE = "ideation"
OFFLINE_LABEL = "template seed ideas (offline: no model configured)"


def run_phase(ctx: PhaseContext) -> dict[str, Any]:
    cfg = IdeasConfig.of(ctx.cfg)
    template = load_template(ctx.cfg.topic.path) if ctx.cfg.topic.path is not None else None
    llm = ctx.llm if ctx.llm is not None and ctx.llm.has(ROLE) else None
    run = _Run(cfg, llm, Checkpoints(ctx.run_dir / "ideas"), Library(ctx.literature),
               Pool(ctx.cfg.llm.max_concurrency))
    dropped: list[dict[str, Any]] = []
    if cfg.load is not None:
        ideas, source, label = load_ideas(cfg.load), "loaded", f"loaded from {cfg.load}"
        for idea in ideas:
            idea.setdefault("generated_by", label)
        run.check_loaded(ideas, str(cfg.load))
    elif llm is None:
        if template is None:
            raise EngineError("the ideas phase needs a model to draft ideas from a topic file (there is no template "
                              "with seed ideas): set model=<name> (conf/model/) or model.base_url=URL "
                              "model.name=NAME")
        ideas = ideas_from_data(template.seed_ideas, template.path / "seed_ideas.json")
        source = label = OFFLINE_LABEL
        for idea in ideas:
            idea["generated_by"] = label
        run.check_loaded(ideas, str(template.path / "seed_ideas.json"))
    else:
        label, source = llm.model_name(ROLE), "generated"
        budget = ctx.budget
        why = budget.afford_phase("ideas", "ideation") if budget is not None and template is not None else None
        ideas, dropped = ([], []) if why else run.generate(_topic(ctx, template), label)
        stop = why or (budget.stopped_in("ideas") if budget is not None else None)
        if not ideas and stop and template is not None:  # the offline path: the template's seed ideas
            ideas, source, label = _seed_ideas(template, f"template seed ideas (the budget stopped ideation: {stop})")
            for idea in ideas:
                idea["novelty"] = unchecked(f"not checked: the budget stopped the phase ({stop})")
    if not ideas:
        reasons = "; ".join(f"{d['Name'] or d['slot']}: {d['reason']}" for d in dropped)
        raise EngineError(f"every idea was dropped ({reasons}); see {ctx.run_dir / 'ideas'} and try again "
                          "(ideas.num_ideas=N), or give ideas with ideas.load=PATH")

    chosen = choose(ideas, cfg.index)
    write_json(ctx.run_dir / "ideas.json", {"chosen": ideas[chosen]["Name"], "ideas": ideas, "dropped": dropped})
    write_json(ctx.run_dir / "idea.json", ideas[chosen])
    ctx.tracker.log_table("ideas", table_rows(ideas, chosen))
    num_novel = sum(1 for i in ideas if i.get("novel") is True)
    unchecked_ = sum(1 for i in ideas if (i.get("novelty") or {}).get("decision") == "unchecked")
    log.info("ideas (%s): %d, %d novel, %d not checked for novelty, %d dropped; the experiments test %s", label,
             len(ideas), num_novel, unchecked_, len(dropped), ideas[chosen]["Name"])
    return {"ideas": "ideas.json", "idea": "idea.json", "chosen": ideas[chosen]["Name"], "num_ideas": len(ideas),
            "num_novel": num_novel, "dropped": len(dropped), "source": source, "generated_by": label}


def _seed_ideas(template: Template, label: str) -> tuple[list[dict[str, Any]], str, str]:
    ideas = ideas_from_data(template.seed_ideas, template.path / "seed_ideas.json")
    for idea in ideas:
        idea["generated_by"] = label
    log.warning("ideas: %s", label)
    return ideas, label, label


def _topic(ctx: PhaseContext, template: Template | None) -> Topic:
    if template is None:
        if ctx.cfg.topic.file is None:
            raise EngineError("no topic: set topic.file=path/to/topic.md, or use a template (+topic=grokking)")
        return parse_topic_file(ctx.cfg.topic.file)
    manifest = template.manifest
    return topic_from_template(template, ctx.cfg.topic.profile or (manifest.default_profile if manifest else None))


class _Run:
    """One run of the phase: its model, checkpoints, literature and thread pool."""

    def __init__(self, cfg: IdeasConfig, llm: LLM | None, store: Checkpoints, library: Library, pool: Pool):
        self.cfg, self.llm, self.store, self.library, self.pool = cfg, llm, store, library, pool

    def generate(self, topic: Topic, label: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        assert self.llm is not None
        names = NameRegister()
        for seed in topic.seed_ideas:
            names.claim(SEED, str(seed.get("Name", "")), str(seed.get("Title") or seed.get("Name", "")))
        slots = [f"idea-{i}" for i in range(self.cfg.num_ideas)]
        states = [self.store.load(slot, "generated") for slot in slots]
        for i, st in enumerate(states):  # a rerun: the names of ideas already drafted stay theirs
            if st.get("idea") and not st.get("dropped"):
                names.claim(i, st["idea"]["Name"], st["idea"]["Title"])
        ideation = Ideation(self.llm, topic, self.cfg, self.library, names, self.pool.check)

        def job(i: int) -> tuple[dict[str, Any] | None, str | None]:
            st, save = states[i], lambda: self.store.save(slots[i], states[i])
            try:
                ideation.run_slot(i, st, save)
            except LLMCallError as e:  # not checkpointed: a rerun tries this idea again
                log.warning("idea %d: %s", i + 1, e)
                return None, f"model call failed: {e}"
            if st.get("dropped"):
                return None, st["dropped"]
            idea = dict(st["idea"]) | {"generated_by": label, "source": "generated"}
            return self._with_novelty(idea, st, save, i), None

        ideas, dropped = [], []
        for i, (idea, reason) in enumerate(self.pool.run([lambda i=i: job(i) for i in range(len(slots))])):
            if idea is not None:
                ideas.append(idea)
            else:
                idea_ = states[i].get("idea") or {}
                dropped.append({"slot": slots[i], "Name": idea_.get("Name"), "Title": idea_.get("Title"),
                                "reason": reason, "idea": states[i].get("idea")})
        return ideas, dropped

    def check_loaded(self, ideas: list[dict[str, Any]], where: str) -> None:
        """Novelty of ideas given as they are (loaded, or the template's seeds); decisions they carry are kept."""
        todo = []
        for i, idea in enumerate(ideas):
            recorded = _recorded_novelty(idea, where)
            if recorded is not None:
                idea["novelty"] = recorded
            elif self.llm is None:
                idea["novelty"] = unchecked("offline (no model)")
            elif not self.cfg.check_novelty:
                idea["novelty"] = unchecked("not checked (ideas.check_novelty=false)")
            else:
                todo.append(i)

        def job(i: int) -> None:
            slot = f"loaded-{i}"
            state = self.store.load(slot, f"loaded:{ideas[i]['Name']}")
            self._with_novelty(ideas[i], state, lambda: self.store.save(slot, state), i)

        self.pool.run([lambda i=i: job(i) for i in todo])

    def _with_novelty(self, idea: dict[str, Any], state: dict[str, Any], save: Callable[[], None],
                      i: int) -> dict[str, Any]:
        if self.llm is None or not self.cfg.check_novelty:
            idea["novelty"] = unchecked("offline (no model)" if self.llm is None
                                        else "not checked (ideas.check_novelty=false)")
            return idea
        record = check_novelty(self.llm, idea, state, save, self.library, self.cfg.novelty_rounds,
                               CallContext(node=f"idea-{i}", stage="ideas"), self.pool.check)
        idea["novelty"] = record
        if record["decision"] != "unchecked":
            idea["novel"] = record["decision"] == "novel"
        return idea


def _recorded_novelty(idea: dict[str, Any], where: str) -> dict[str, Any] | None:
    nov = idea.get("novelty")
    if isinstance(nov, dict) and nov.get("decision") in ("novel", "not novel"):
        return nov
    if isinstance(idea.get("novel"), bool):
        return {"decision": "novel" if idea["novel"] else "not novel", "reason": f"as recorded in {where}",
                "rounds": 0, "queries": [], "papers": []}
    return None
