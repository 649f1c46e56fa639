"""The `data/` folder the model's plotting program reads: the run's result files only (the nodes' run_0 results,
the stage records, the tree), copied into its sandbox, and the listing with previews its prompt shows."""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from engine.writeup.figures.data import RunResults, load_result

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 32 * 2**20
MAX_TOTAL_BYTES = 96 * 2**20
PREVIEW_CHARS = 400
MAX_NODE_LINES = 40


@dataclass
class Staging:
    """What goes into data/: `files` maps each path under the sandbox (data/...) to its run-relative source."""
    files: dict[str, str] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)  # data/index.json, written by us
    node_dirs: dict[str, str] = field(default_factory=dict)  # original node id -> data/nodes/<dir>

    def sources(self, sandbox_paths: list[str]) -> list[str]:
        """Run-relative files for paths the program named (data/index.json stands for tree.json)."""
        out = []
        for p in sandbox_paths:
            p = str(p).removeprefix("./")
            p = p if p.startswith("data/") else f"data/{p}"
            src = "tree.json" if p == "data/index.json" else self.files.get(p)
            if src and src not in out:
                out.append(src)
        return out

    def copy_into(self, run_dir: Path, workdir: Path) -> None:
        for dest, src in self.files.items():
            target = workdir / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run_dir / src, target)
        (workdir / "data" / "index.json").write_text(json.dumps(self.index, indent=1))


def stage_run(run: RunResults) -> Staging:
    """The files to copy: records first, then the nodes' results (stage bests, their seed runs, every other good
    node) while they fit MAX_TOTAL_BYTES; copies are left out (their source node's folder holds the results)."""
    st = Staging()
    budget = MAX_TOTAL_BYTES

    def add(rel: str) -> bool:
        nonlocal budget
        path = run.run_dir / rel
        if not path.is_file() or path.is_symlink():
            return False
        size = path.stat().st_size
        if size > MAX_FILE_BYTES or size > budget:
            log.info("not giving %s to the plotting program: %d bytes", rel, size)
            return False
        budget -= size
        st.files[f"data/{rel}"] = rel
        return True

    add("tree.json")
    for stage in run.stages:
        add(run.stage_file(stage))
        add(str((stage.get("seeds") or {}).get("table") or f"stages/{stage['name']}/seeds.parquet"))
    firsts = [run.original((s.get("best") or {}).get("node_id", "")) for s in run.stages]
    seeds = [run.original(n) for s in run.stages for n in (s.get("seeds") or {}).get("node_ids", [])]
    rest = [n.id for n in run.nodes.values() if not n.buggy and n.operator != "copy"]
    for node_id in dict.fromkeys(firsts + seeds + rest):
        node = run.nodes.get(node_id)
        if node is None or node.dir is None:
            continue
        added = [rel for rel in run.result_files(node_id) if add(rel)]
        if added:
            st.node_dirs[node_id] = f"data/{node.dir}"
    st.index = _index(run, st)
    return st


def _index(run: RunResults, st: Staging) -> dict[str, Any]:
    def where(node_id: str) -> str | None:
        return st.node_dirs.get(run.original(node_id))

    stages = []
    for s in run.stages:
        seeds = s.get("seeds") or {}
        best = (s.get("best") or {}).get("node_id", "")
        start = (s.get("started_from") or {}).get("node_id")
        stages.append({
            "name": s["name"], "title": s.get("title"), "best_dir": where(best), "best_value": s.get("best_value"),
            "start_dir": where(start) if start else None, "start_value": (s.get("started_from") or {}).get("value"),
            "seed_dirs": [where(n) for n in seeds.get("node_ids", [])], "seed_mean": seeds.get("mean"),
            "seed_stderr": seeds.get("stderr"),
            "changes": [{"change": h.get("change"), "dir": where(h.get("id", "")), "value": h.get("value"),
                         "failed": bool(h.get("buggy"))}
                        for h in s.get("history", []) if h.get("operator") not in ("copy", "seed")]})
    nodes = [{"step": n.step, "stage": n.stage, "operator": n.operator, "change": n.change, "metric": n.metric,
              "failed": n.buggy, "dir": where(n.id), "copy_of_step": run.nodes[run.original(n.id)].step
              if n.copied_from and run.original(n.id) in run.nodes else None} for n in run.nodes.values()]
    return {"primary_metric": {"name": run.metric, "direction": run.direction}, "stages": stages, "nodes": nodes}


# -- the listing in the prompt -------------------------------------------------------------------------------
def describe(v: Any, depth: int = 0) -> str:
    """A short structural preview of loaded data: keys, lengths, value ranges."""
    if isinstance(v, np.ndarray) and v.dtype == object and v.ndim == 0:
        v = v.item()
    if isinstance(v, dict):
        if depth > 2:
            return f"{{{len(v)} keys}}"
        items = [f"{k!s}: {describe(x, depth + 1)}" for k, x in list(v.items())[:10]]
        return "{" + ", ".join(items) + (", ..." if len(v) > 10 else "") + "}"
    if isinstance(v, np.ndarray):
        rng = f" ({v.min():.4g} .. {v.max():.4g})" if v.dtype.kind in "iuf" and v.size else ""
        return f"array{tuple(v.shape)} {v.dtype}{rng}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return f"list[{len(v)}] of numbers ({v[0]:.4g} .. {v[-1]:.4g})"
        return f"list[{len(v)}]" + (f" of {describe(v[0], depth + 1)}" if v else "")
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str):
        return repr(v if len(v) <= 40 else v[:37] + "...")
    return repr(v)


def preview(path: Path) -> str:
    if path.suffix == ".parquet":
        meta = pq.read_metadata(path)
        return f"table, {meta.num_rows} rows, columns: {', '.join(meta.schema.names)}"
    content = load_result(path)
    text = "unreadable here" if content is None else describe(content)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 3] + "..."


def listing(run: RunResults, st: Staging) -> str:
    """The prompt's list of files: records one by one; node folders grouped by the files they hold, each group
    previewed once; then one line per node folder."""
    lines = ["- data/index.json: our index of the run: primary metric; per stage its best, starting and seed node "
             "folders and each change with its value; per node its stage, operator, change, metric and folder"]
    node_files: dict[str, list[str]] = {}
    for dest in st.files:
        folder = next((d for d in st.node_dirs.values() if dest.startswith(d + "/")), None)
        if folder is None:
            lines.append(f"- {dest}: {preview(run.run_dir / st.files[dest])}")
        else:
            node_files.setdefault(folder, []).append(dest[len(folder) + 1:])
    groups: dict[tuple[str, ...], list[str]] = {}
    for folder, names in node_files.items():
        groups.setdefault(tuple(names), []).append(folder)
    for names, folders in groups.items():
        lines.append(f"- {len(folders)} node folder(s) holding {', '.join(names)}; previews from {folders[0]}:")
        lines += [f"    {name}: {preview(run.run_dir / st.files[f'{folders[0]}/{name}'])}" for name in names]
    by_dir = {d: n for n, d in st.node_dirs.items()}
    node_lines = []
    for folder in list(node_files)[:MAX_NODE_LINES]:
        n = run.nodes[by_dir[folder]]
        value = f"{run.metric}={n.metric:.4g}" if n.metric is not None else "no metric"
        change = f", change {n.change}" if n.change else ""
        node_lines.append(f"    {folder}: stage {n.stage}, {n.operator}{change}, {value}")
    more = len(node_files) - MAX_NODE_LINES
    return "\n".join(lines + ["- node folders:"] + node_lines + ([f"    ... and {more} more"] if more > 0 else []))


def stage_text(run: RunResults) -> str:
    out = []
    for s in run.stages:
        seeds = s.get("seeds") or {}
        seed = f"; seed mean {seeds['mean']:.4g} ± {seeds.get('stderr') or 0:.3g} over {seeds.get('ok')} seeds" \
            if isinstance(seeds.get("mean"), (int, float)) else ""
        changes = [f"{h.get('change')}={h['value']:.4g}" if isinstance(h.get("value"), (int, float))
                   else f"{h.get('change')}=failed" for h in s.get("history", [])
                   if h.get("operator") not in ("copy", "seed") and h.get("change")]
        best = s.get("best_value")
        out.append(f"- {s['name']} ({s.get('title', '')}): {s.get('nodes')} nodes, {s.get('why', '')}; best "
                   f"{run.metric} = {best if best is None else format(best, '.4g')}{seed}"
                   + (f"; changes: {', '.join(changes[:20])}" if changes else ""))
    return "\n".join(out) or "(no stage records)"


def idea_text(run: RunResults, limit: int = 1500) -> str:
    idea = run.idea or {}
    parts = [f"{k}: {idea[k]}" for k in ("Title", "Short Hypothesis", "Experiment", "Experiments", "Abstract")
             if idea.get(k)]
    text = "\n".join(str(p) for p in parts) or "(no idea record)"
    return text if len(text) <= limit else text[:limit - 3] + "..."
