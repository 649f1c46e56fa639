"""Experiment tracking on wandb: one wandb run per pipeline run; Parquet in the run directory stays the
source of truth. Offline (files under <run dir>/wandb, `wandb sync` later) when no WANDB_API_KEY is set."""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.rundir import write_atomic
from search.node import Node

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingConfig:
    """tracking.* (conf/tracking/ holds the defaults and their meaning; engine.config builds this)."""

    kind: str  # wandb | none
    project: str | None  # None: wandb's default project
    entity: str | None
    group: str | None
    mode: str | None  # online | offline | disabled; None: online with WANDB_API_KEY, else offline
    # the kind of wandb run within its group: a pipeline run, or a sweep's analysis (benchmarks/scaling.py)
    job_type: str

    def __post_init__(self) -> None:
        if self.kind not in ("wandb", "none"):
            raise ValueError(f"tracking.kind must be wandb or none, got {self.kind!r}")
        if self.mode not in (None, "online", "offline", "disabled"):
            raise ValueError(f"tracking.mode must be online, offline or disabled, got {self.mode!r}")


class Tracker(Protocol):
    def log_node(self, node: Node, best: float | None) -> None: ...

    def log_event(self, name: str, data: dict[str, Any]) -> None: ...

    def log_table(self, name: str, rows: list[dict[str, Any]]) -> None: ...

    def log_images(self, images: dict[str, Path]) -> None: ...

    def finish(self, summary: dict[str, Any]) -> None: ...


class NullTracker:
    def log_node(self, node: Node, best: float | None) -> None:
        pass

    def log_event(self, name: str, data: dict[str, Any]) -> None:
        pass

    def log_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        pass

    def log_images(self, images: dict[str, Path]) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass


class WandbTracker:
    def __init__(self, cfg: TrackingConfig, run_dir: Path, run_name: str, config: dict[str, Any],
                 api_key_present: bool):
        import wandb

        mode = cfg.mode or ("online" if api_key_present else "offline")
        # a resumed pipeline run continues its wandb run: the id is kept in the run directory
        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        write_atomic(id_file, run_id)
        self.run = wandb.init(project=cfg.project, entity=cfg.entity, group=cfg.group, job_type=cfg.job_type,
                              name=run_name, id=run_id, resume="allow", dir=str(run_dir), config=config, mode=mode,
                              settings=wandb.Settings(silent=True, console="off"))
        self.run.define_metric("node/step")
        self.run.define_metric("node/*", step_metric="node/step")
        log.info("wandb: %s mode, run %s%s", mode, run_id,
                 "" if mode != "offline" else f" (sync later: wandb sync {run_dir / 'wandb'})")

    def log_node(self, node: Node, best: float | None) -> None:
        self.run.log({"node/step": node.step, "node/stage": node.stage, "node/operator": node.operator,
                      "node/metric": node.metric, "node/exec_time_s": node.exec.exec_time_s,
                      "node/buggy": bool(node.is_buggy), "node/cause": node.bug_reason or "",
                      "node/best": best})

    def log_event(self, name: str, data: dict[str, Any]) -> None:
        self.run.log({f"event/{name}": 1, **{f"event/{k}": v for k, v in data.items()}})

    def log_table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """A wandb Table (columns from the rows' keys; values that are not scalars as JSON text)."""
        import json

        import wandb

        columns = list(dict.fromkeys(k for r in rows for k in r))
        data = [[v if v is None or isinstance(v, (int, float, str, bool)) else json.dumps(v, default=str)
                 for v in (r.get(c) for c in columns)] for r in rows]
        self.run.log({f"table/{name}": wandb.Table(columns=columns, data=data)})

    def log_images(self, images: dict[str, Path]) -> None:
        """PNG files, each under `image/<name>`."""
        import wandb

        self.run.log({f"image/{name}": wandb.Image(str(path)) for name, path in images.items()})

    def finish(self, summary: dict[str, Any]) -> None:
        for key, value in _flatten(summary).items():
            self.run.summary[key] = value
        self.run.finish()


def make_tracker(cfg: TrackingConfig, run_dir: Path, run_name: str, config: dict[str, Any]) -> Tracker:
    if cfg.kind == "none" or cfg.mode == "disabled":
        return NullTracker()
    return WandbTracker(cfg, run_dir, run_name, config, api_key_present=bool(os.environ.get("WANDB_API_KEY")))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}/")
        else:
            out[f"{prefix}{k}"] = v
    return out
