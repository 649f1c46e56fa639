"""Per-idea checkpoints (run_dir/ideas/<slot>.json), written after every finished model call that matters and
every literature query, so a rerun of the phase continues where the last one stopped.

A slot's state (all keys optional until reached):
    key          what the slot is ("generated" or "loaded:<Name>"); a checkpoint of another kind is ignored
    idea         the idea after the last finished round
    rounds_done  ideation rounds finished (round 1 drafts, later rounds refine)
    finished     refinement is over (the model said done, or the rounds ran out)
    turns        searches of the round in progress: [{query, results}] (results None while it runs)
    searches     every query of the ideation rounds
    drift        {on_topic, reason} from the topic check
    dropped      why the idea was dropped (a final outcome; failures that a rerun may fix are not stored)
    novelty      {rounds: [{query, results}], decision: {...} | None}
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.rundir import write_json

log = logging.getLogger(__name__)


class Checkpoints:
    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, slot: str, key: str) -> dict[str, Any]:
        """The slot's saved state, or a fresh one when there is none (or one of another kind)."""
        f = self.folder / f"{slot}.json"
        if f.is_file():
            try:
                state = json.loads(f.read_bytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("%s is not readable JSON: the idea in it starts over", f)
                state = None
            if isinstance(state, dict) and state.get("key") == key:
                return state
        return {"key": key}

    def save(self, slot: str, state: dict[str, Any]) -> None:
        write_json(self.folder / f"{slot}.json", state)
