"""What ideation is about: a v2 topic file (# Title, ## Keywords, ## TL;DR, ## Abstract) or a template.

A topic file, as AI-Scientist-v2 writes them:

    # Title: Why does weight decay make networks grok?
    ## Keywords
    grokking, weight decay, generalization
    ## TL;DR
    One sentence.
    ## Abstract
    A paragraph.

The leading "Title:" of the heading is optional; keywords are comma-separated or one per bullet line.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError
from engine.experiments.template import Template, load_template
from engine.inputs.files import read_text

if TYPE_CHECKING:
    from engine.config import RunConfig

SECTIONS = {"keywords": "Keywords", "tldr": "TL;DR", "abstract": "Abstract"}


@dataclass
class Topic:
    title: str
    keywords: list[str]
    tldr: str
    abstract: str
    task_description: str = ""  # a template's prompt.json task_description ("" without a template)
    system: str = ""  # a template's prompt.json system prompt
    code: str = ""  # a template's experiment.py (at the run's size profile)
    seed_ideas: list[dict[str, Any]] = field(default_factory=list)  # a template's, shown as examples
    source: str = ""  # the file or template folder it came from

    def describe(self) -> str:
        """The topic as a prompt section (used for drafting and for the drift check)."""
        parts = [f"Title: {self.title}"]
        if self.keywords:
            parts.append(f"Keywords: {', '.join(self.keywords)}")
        if self.tldr:
            parts.append(f"TL;DR: {self.tldr}")
        if self.abstract:
            parts.append(f"Abstract: {self.abstract}")
        if self.task_description and self.task_description != self.abstract:
            parts.append(f"Task: {self.task_description}")
        return "\n".join(parts)

    def examples(self) -> str:
        return json.dumps(self.seed_ideas, indent=2) if self.seed_ideas else ""


def parse_topic_file(path: str | Path) -> Topic:
    path = Path(path)
    text = read_text(path, f"topic file {path}")
    title, sections = None, {}
    current = None
    for line in text.splitlines():
        h1 = re.match(r"^#\s+(.*\S)\s*$", line)
        h2 = re.match(r"^##\s+(.*\S)\s*$", line)
        if h1 and title is None:
            title, current = re.sub(r"^title\s*:\s*", "", h1.group(1), flags=re.IGNORECASE).strip(), None
        elif h2:
            current = _section_key(h2.group(1))
            if current is not None:
                sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    fmt = "a topic file needs '# Title', '## Keywords', '## TL;DR' and '## Abstract'"
    if not title:
        raise EngineError(f"topic file {path}: no '# Title' heading; {fmt}")
    body = {k: "\n".join(v).strip() for k, v in sections.items()}
    for key, heading in SECTIONS.items():
        if not body.get(key):
            state = "is empty" if key in body else "is missing"
            raise EngineError(f"topic file {path}: section '## {heading}' {state}; {fmt}")
    keywords = [k.strip(" -*\t") for k in re.split(r"[,\n]", body["keywords"])]
    return Topic(title, [k for k in keywords if k], body["tldr"], body["abstract"], source=str(path))


def topic_from_template(template: Template, profile: str | None = None) -> Topic:
    """The template's task as the topic; its code (at `profile`) and seed ideas are shown to the model."""
    task = template.prompt["task_description"]
    return Topic(title=template.name, keywords=[], tldr="", abstract=task, task_description=task,
                 system=template.prompt["system"], code=template.code_for_profile(profile),
                 seed_ideas=list(template.seed_ideas), source=str(template.path))


def _section_key(heading: str) -> str | None:
    h = re.sub(r"[^a-z]", "", heading.lower())
    return {"keywords": "keywords", "tldr": "tldr", "abstract": "abstract"}.get(h)


def check_inputs(cfg: RunConfig) -> None:
    """What the ideas are drafted from, read before the launch makes a run directory (a file given as ideas.load
    is read when the config is built)."""
    from engine.ideas.config import IdeasConfig
    if IdeasConfig.of(cfg).load is not None:
        return
    if cfg.topic.path is not None:
        load_template(cfg.topic.path)
    elif cfg.topic.file is not None:
        parse_topic_file(cfg.topic.file)
