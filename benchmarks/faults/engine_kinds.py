"""The engine faults, through the real launcher: a runner actor or the driver killed mid-search, and a malformed
template, ideas file or config value.

A killed runner must cost the node it was running and nothing else (the search finishes); a killed driver,
resumed, must keep every finished node as it was and run none again; a malformed input must end the run
within seconds with one clear line (exit status 2, no traceback).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from benchmarks.faults.launcher import (
    command,
    env,
    expect_clear_error,
    finished_run,
    guarded,
    journal,
    launch,
    one_stage,
    template,
)
from benchmarks.faults.record import Kind, Trial


def runner_sigkill(trial: Trial, folder: Path) -> None:
    """SIGKILL one Ray runner actor while it runs a node."""
    tpl, run_dir = template(folder, sleep_s=3.0), folder / "run"
    proc = subprocess.Popen(command("+topic=template", f"topic.path={tpl}", *one_stage(4), f"hydra.run.dir={run_dir}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
    victim, deadline = None, time.monotonic() + 180
    while victim is None and proc.poll() is None and time.monotonic() < deadline:
        try:
            busy = [p for p in psutil.Process(proc.pid).children(recursive=True)
                    if "ray::Runner.run" in " ".join(p.cmdline() or [])]
        except psutil.Error:
            busy = []
        victim = busy[0] if busy else None
        time.sleep(0.2)
    if victim is None:
        proc.kill()
        proc.communicate()
        trial.finished = "no"
        trial.note("no runner was seen running a node")
        return
    finished_before = {i for i, r in journal(run_dir).items() if not r["is_buggy"]}
    os.kill(victim.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    rows = finished_run(subprocess.CompletedProcess(proc.args, proc.returncode, "", err), run_dir, trial, 4)
    died = [r for r in rows.values() if (r["bug_reason"] or "").startswith("RunnerDied")]
    trial.nodes_lost = sum(1 for i in finished_before if i not in rows or rows[i]["is_buggy"])
    trial.note(f"{len(died)} node recorded as RunnerDied")


def driver_sigkill_resume(trial: Trial, folder: Path) -> None:
    """SIGKILL the driver after 3 of 8 nodes, then resume: nothing finished lost, nothing re-run. The thread
    executor saves two Ray start-ups: what a resume reads (the journal, the pending nodes) is the driver's."""
    tpl, run_dir = template(folder, sleep_s=1.5), folder / "run"
    proc = subprocess.Popen(command("+topic=template", f"topic.path={tpl}", *one_stage(8), "cluster=threads",
                                    f"hydra.run.dir={run_dir}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    deadline = time.monotonic() + 180
    while len(journal(run_dir)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = journal(run_dir)
    res, _ = launch("+topic=template", f"topic.path={tpl}", f"resume={run_dir}")
    after = finished_run(res, run_dir, trial, 8)
    lost = [i for i, r in before.items() if i not in after]
    rerun = [i for i, r in before.items() if i in after and after[i]["finished_at"] != r["finished_at"]]
    trial.nodes_lost = len(lost) + len(rerun)
    trial.note(f"killed after {len(before)} nodes" + (f"; {len(rerun)} re-run" if rerun else ""))


def bad_template(what: str):
    def scenario(trial: Trial, folder: Path) -> None:
        tpl = template(folder)
        if what == "experiment.py":
            (tpl / "experiment.py").unlink()
        else:
            (tpl / "prompt.json").write_text('{"system": "You are a researcher.", ')
        res, seconds = launch("+topic=template", f"topic.path={tpl}", *one_stage(3), f"hydra.run.dir={folder / 'r'}")
        expect_clear_error(res, seconds, trial, what)
    return scenario


def bad_ideas_file(trial: Trial, folder: Path) -> None:
    tpl, ideas = template(folder), folder / "ideas.json"
    ideas.write_text('[{"Name": "toy_lr", "Title": ')
    res, seconds = launch("+topic=template", f"topic.path={tpl}", *one_stage(3), "pipeline.phases=[ideas,experiments]",
                          f"ideas.load={ideas}", f"hydra.run.dir={folder / 'r'}")
    expect_clear_error(res, seconds, trial, "ideas.json")


def bad_config_value(trial: Trial, folder: Path) -> None:
    res, seconds = launch("+topic=template", f"topic.path={template(folder)}", *one_stage(3), "search.debug_prob=2",
                          f"hydra.run.dir={folder / 'r'}")
    expect_clear_error(res, seconds, trial, "search.debug_prob")


KINDS = [
    Kind("runner-kill", "runner actor SIGKILL mid-node", "engine", guarded(runner_sigkill)),
    Kind("driver-kill", "driver SIGKILL, then resume", "engine", guarded(driver_sigkill_resume)),
    Kind("no-experiment", "template without experiment.py", "engine", guarded(bad_template("experiment.py"))),
    Kind("bad-prompt", "template with a broken prompt.json", "engine", guarded(bad_template("prompt.json"))),
    Kind("bad-ideas", "malformed ideas file (ideas.load)", "engine", guarded(bad_ideas_file)),
    Kind("bad-config", "bad config value", "engine", guarded(bad_config_value)),
]
