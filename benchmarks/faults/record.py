"""What one fault run found, the per-kind totals, and the markdown table.

A `Trial` is one run of one kind of fault; a scenario fills it in. `summarize` folds a kind's trials into one
row of the table.
"""
from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psutil


@dataclass
class Trial:
    kind: str
    escapes: list[str] = field(default_factory=list)  # what got out, one short line each
    nodes_lost: int = 0  # finished nodes missing or re-run after the fault
    procs_touched: int = 0  # sentinel processes killed, stopped or traced
    finished: str = "yes"  # yes / no / error: the search (or the node's collection) ended as it should
    error_s: float | None = None  # seconds until the clear error, where one is expected
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # measured values worth keeping

    def escape(self, what: str) -> None:
        self.escapes.append(what)

    def note(self, what: str) -> None:
        self.notes.append(what)


@dataclass(frozen=True)
class Kind:
    key: str  # what --kinds names
    name: str  # the table's row
    group: str  # sandbox / engine / llm
    run: Callable[[Trial], None]  # fills in one trial
    fast: bool = False  # in the --fast subset the test suite runs


class Sentinel:
    """An unrelated process (`sleep`) that must live through a fault untouched: not killed, stopped or traced.

    Its environment carries a token, so a node program that reads it through /proc leaks the token.
    """

    def __init__(self, token: str):
        self.token = token
        self.proc = subprocess.Popen(["sleep", "3600"], env={"FAULTS_SENTINEL": token, "PATH": "/usr/bin:/bin"},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def touched(self) -> str | None:
        """Why the sentinel counts as touched, or None."""
        if self.proc.poll() is not None:
            return f"sentinel exited ({self.proc.returncode})"
        try:
            status = psutil.Process(self.proc.pid).status()
        except psutil.NoSuchProcess:
            return "sentinel vanished"
        if status in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP, psutil.STATUS_ZOMBIE):
            return f"sentinel {status}"
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                tracer = next((line.split()[1] for line in f if line.startswith("TracerPid:")), "0")
        except OSError:
            tracer = "0"
        return f"sentinel traced by pid {tracer}" if tracer != "0" else None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def summarize(kind: Kind, trials: list[Trial]) -> dict:
    """One row of the table from a kind's trials."""
    finished = Counter(t.finished for t in trials)
    error_s = [t.error_s for t in trials if t.error_s is not None]
    notes = Counter(n for t in trials for n in t.notes)
    return {
        "kind": kind.name, "key": kind.key, "group": kind.group, "runs": len(trials),
        "escapes": sum(bool(t.escapes) for t in trials),
        "nodes_lost": sum(t.nodes_lost for t in trials),
        "procs_touched": sum(t.procs_touched for t in trials),
        "finished": ", ".join(f"{k} {v}/{len(trials)}" if len(finished) > 1 else k
                              for k, v in finished.most_common()),
        "error_s_max": round(max(error_s), 1) if error_s else None,
        "seconds_mean": round(sum(t.seconds for t in trials) / max(1, len(trials)), 1),
        "note": "; ".join(n if c == len(trials) else f"{n} ({c}/{len(trials)})" for n, c in notes.most_common(3)),
        "escape_details": sorted({e for t in trials for e in t.escapes}),
        "trials": [asdict(t) for t in trials],
    }


def markdown(rows: list[dict]) -> str:
    head = ("| kind | runs | escapes | finished nodes lost | unrelated processes touched | search finished "
            "| s to clear error | s per run | note |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        err = "" if r["error_s_max"] is None else f"{r['error_s_max']:.1f}"
        note = r["note"]
        if r["escape_details"]:
            note = "ESCAPED: " + "; ".join(r["escape_details"][:3]) + (f"; {note}" if note else "")
        lines.append(f"| {r['kind']} | {r['runs']} | {r['escapes']} | {r['nodes_lost']} | {r['procs_touched']} "
                     f"| {r['finished']} | {err} | {r['seconds_mean']:.1f} | {note.replace('|', '/')} |")
    return head + "\n".join(lines) + "\n"
