"""Run one hostile node program (programs/*.py) through `execute_node` and record every way out it found.

Every trial plants fresh random markers: a secret in the home directory, a host file to link to, host unix
sockets and a loopback TCP listener, a sentinel process. After the node, it looks for them everywhere the
engine would carry them (the result, the stdout/stderr tails, final_info, the artifacts), for marker files
outside the node directory, for connections the listeners got, and for processes the node left behind; then
it removes everything it planted. The limits are scaled down so that each trial takes seconds; the mechanisms
that enforce them are the engine's own.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from benchmarks.faults.record import Sentinel, Trial
from engine.config import shipped_sandbox
from engine.nodes.node_exec import NodeJob, NodeOutcome, execute_node
from engine.sandbox.config import SandboxConfig

PROGRAMS = Path(__file__).parent / "programs"
REPO = Path(__file__).resolve().parents[2]
SHADOW_LINE = re.compile(r"(?m)^(root|daemon|bin|nobody):[^:\n]*:\d*:\d*:")
MEMORY_GB = 1.0  # the node's memory limit in these trials; the memory attacks hold 1.5 GB
RAN = "FAULTS-PROGRAM-STARTED"  # the first line every hostile program prints (on stderr): a trial whose program
# never ran proves nothing
FILE_GB = 0.25  # the per-file size cap; huge stdout writes 4 GB, the disk filler 1 GB in 64 MB files


def sandbox_config(**changes: object) -> SandboxConfig:
    """The engine's default sandbox, with limits scaled down for a benchmark (a node-directory size cap, when
    the sandbox has one, is scaled like the per-file cap)."""
    base = shipped_sandbox()
    scaled: dict[str, object] = {"timeout_s": 15.0, "memory_gb": MEMORY_GB, "max_file_gb": FILE_GB}
    for f in dataclasses.fields(base):
        if f.name.endswith("_gb") and ("dir" in f.name or "disk" in f.name):
            scaled[f.name] = 2 * FILE_GB
    return dataclasses.replace(base, **{**scaled, **changes})


class Listeners:
    """Host unix sockets (a path in /tmp, a path in the home directory, and both as abstract names) and a TCP
    listener on 127.0.0.1; counts the connections that arrive."""

    def __init__(self, token: str, home_dir: Path):
        self.paths = [f"/tmp/faults-{token}.sock", str(home_dir / "agent.sock")]
        self.socks = []
        for path in self.paths:
            for name in (path, "\0" + path):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.bind(name)
                self.socks.append(s)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        self.port = tcp.getsockname()[1]
        self.socks.append(tcp)
        self.connections: list[str] = []
        for s in self.socks:
            s.listen(8)
            s.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            for s in self.socks:
                try:
                    conn, _ = s.accept()
                except (TimeoutError, OSError):
                    continue
                name = s.getsockname()
                self.connections.append(f"port {name[1]}" if isinstance(name, tuple) else repr(name))
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self.socks:
            s.close()
        for path in self.paths:
            Path(path).unlink(missing_ok=True)


class DiskWatch:
    """The largest total size of the files under `root`, sampled while a node runs."""

    def __init__(self, root: Path):
        self.root, self.peak = root, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            total = 0
            for dirpath, _, files in os.walk(self.root):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, name)).st_size
                    except OSError:
                        pass
            self.peak = max(self.peak, total)

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


class Plant:
    """Everything one trial plants on the host, and its removal."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        self.secret = f"SECRET-{self.token}"
        self.home_dir = Path.home() / f".faults-{self.token}"
        self.home_dir.mkdir(mode=0o700)
        (self.home_dir / "credentials").write_text(f"machine api.example.com password {self.secret}\n")
        (self.home_dir / "secret.json").write_text(json.dumps({"toy": {"means": {"val_loss": 1.0}},
                                                               "secret": self.secret}))
        (self.home_dir / "run").mkdir()
        (self.home_dir / "run" / "final_info.json").write_text((self.home_dir / "secret.json").read_text())
        self.scratch = Path(tempfile.mkdtemp(prefix="faults-scratch-"))
        name = f"faults-{self.token}"
        self.targets = [f"/tmp/{name}", f"/var/tmp/{name}", str(self.scratch / name), str(REPO / name),
                        str(Path.home() / name), f"/{name}"]
        self.sentinel = Sentinel(f"SENTINEL-{self.token}")

    def outside_files(self) -> list[str]:
        return [p for p in self.targets if os.path.lexists(p)]

    def leftovers(self) -> list[psutil.Process]:
        """Processes still running in (or from) the node's scratch directory."""
        found = []
        for p in psutil.process_iter(["cwd", "status"]):
            if p.info["cwd"] and p.info["cwd"].startswith(str(self.scratch)) \
                    and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        return found

    def close(self) -> None:
        for p in self.leftovers():
            try:
                p.kill()
            except psutil.Error:
                pass
        self.sentinel.close()
        for path in self.outside_files():
            Path(path).unlink()
        shutil.rmtree(self.home_dir, ignore_errors=True)
        shutil.rmtree(self.scratch, ignore_errors=True)
        for shm in Path("/dev/shm").glob("faults-*"):
            shm.unlink(missing_ok=True)


def outcome_text(outcome: NodeOutcome) -> str:
    """Everything the engine would keep or show of a node: result fields, final_info, artifacts."""
    r = outcome.result
    parts = [r.stdout_tail or "", r.stderr_tail or "", r.exc_message or "", outcome.plot_error or ""]
    try:
        parts.append(json.dumps(r.final_info))
    except (TypeError, ValueError):
        parts.append(repr(r.final_info))
    parts += [data.decode("utf-8", errors="replace") for data in outcome.artifacts.values()]
    return "\n".join(parts)


def run_attack(program: str, params: dict, cfg: SandboxConfig, trial: Trial,
               check: Callable[[Plant, NodeOutcome, Trial], None] | None = None,
               plant: Plant | None = None) -> NodeOutcome | None:
    """Run one hostile program in a fresh plant and record every way out that it found."""
    plant = plant or Plant()
    listeners = Listeners(plant.token, plant.home_dir)
    params = {"token": f"MARK-{plant.token}", "paths": [str(plant.home_dir / "*")], "targets": plant.targets,
              "name": f"faults-{plant.token}", "pid": plant.sentinel.pid, "unix": listeners.paths,
              "tcp": [listeners.port], "target": str(plant.home_dir / "secret.json"),
              "target_dir": str(plant.home_dir / "run"), **params}
    code = f"import sys\nprint({RAN!r}, file=sys.stderr, flush=True)\n" + (PROGRAMS / program).read_text()
    job = NodeJob(f"faults-{Path(program).stem}", code,
                  {"params.json": json.dumps(params).encode()}, dataclasses.replace(cfg, plot_timeout_s=10),
                  str(plant.scratch), None, None)
    disk = DiskWatch(plant.scratch)
    outcome = None
    try:
        start = time.monotonic()
        try:
            outcome = execute_node(job)
        except Exception as e:  # noqa: BLE001 - an exception escaping execute_node is what we measure
            trial.finished = "no"
            trial.note(f"{type(e).__name__} escaped execute_node")
        trial.seconds = time.monotonic() - start
        trial.figures["peak_disk_mb"] = round(disk.close() / 2**20, 1)
        listeners.close()
        look_for_escapes(plant, listeners, outcome, trial)
        if outcome is not None and check is not None:
            check(plant, outcome, trial)
    finally:
        disk.close()
        listeners.close()
        plant.close()
    return outcome


def look_for_escapes(plant: Plant, listeners: Listeners, outcome: NodeOutcome | None, trial: Trial) -> None:
    """Processes left behind, connections, files outside, the sentinel, and the planted secrets in the output."""
    leftover = plant.leftovers()
    deadline = time.monotonic() + 2  # a process still there 2 s after the node returned outlived it
    while leftover and time.monotonic() < deadline:
        time.sleep(0.1)
        leftover = plant.leftovers()
    if leftover:
        trial.escape(f"{len(leftover)} processes outlived the node")
    if listeners.connections:
        names = sorted({c.replace(plant.token, "<token>") for c in listeners.connections})
        trial.escape("host listener got a connection: " + ", ".join(names[:2]))
    for path in plant.outside_files():
        trial.escape(f"wrote {path.replace(plant.token, '<token>')}")
    touched = plant.sentinel.touched()
    if touched:
        trial.procs_touched += 1
        trial.note(touched)
    if outcome is None:
        return
    if RAN not in outcome.result.stderr_tail:
        trial.finished = "no"
        trial.note(f"the program did not start: {outcome.result.exc_type}: {outcome.result.exc_message}")
    text = outcome_text(outcome)
    if plant.secret in text:
        trial.escape("planted home secret in the node's output")
    if plant.sentinel.token in text:
        trial.escape("another process's environment in the node's output")
    if SHADOW_LINE.search(text):
        trial.escape("/etc/shadow in the node's output")
    allowed = sorted({line.split(" (")[0].split(" errno")[0] for line in text.splitlines()
                      if line.startswith("ALLOWED ")})
    if allowed:
        trial.note(", ".join(a.removeprefix("ALLOWED ") for a in allowed) + " allowed")
