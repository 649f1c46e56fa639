"""The model's figures: it writes ONE plotting program over the run's result files; the program runs in the node
sandbox with a `data/` folder holding copies of those files and nothing else of the run; a failure goes back to
the model with its error output, up to `writeup.plot_retries` attempts."""
from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.llm.service import LLM, CallContext, LLMCallError
from engine.prompts import render_from
from engine.sandbox.config import SandboxConfig
from engine.sandbox.run import run_sandboxed
from engine.writeup.figures.checks import blank_reason, gray
from engine.writeup.figures.data import RunResults
from engine.writeup.figures.ours import Drawn, Skipped
from engine.writeup.figures.staging import Staging, idea_text, listing, stage_run, stage_text

log = logging.getLogger(__name__)

PROMPTS = Path(__file__).resolve().parent / "prompts"
PROGRAM = "plot_figures.py"
SCRATCH_PREFIX = ".figures-sandbox-"
MAX_PNG_BYTES = 20 * 2**20
ERROR_CHARS = 3000


@dataclass
class Attempt:
    number: int
    ok: bool
    error: str | None = None
    figures: int = 0


@dataclass
class ModelResult:
    drawn: list[Drawn] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # figures of the accepted attempt that were unusable
    attempts: list[Attempt] = field(default_factory=list)


class ProgramFailed(Exception):
    """The program's run or its output was unusable; the message goes back to the model."""


def plot_role(llm: LLM | None) -> str | None:
    """The role that writes the plotting program: code, else writeup; None offline."""
    if llm is None:
        return None
    return next((r for r in ("code", "writeup") if llm.has(r)), None)


def model_figures(llm: LLM, role: str, run: RunResults, out_dir: Path, sandbox: SandboxConfig, timeout_s: float,
                  attempts: int, max_figures: int) -> ModelResult:
    """Ask for the program, run it, feed failures back; stops at the first attempt that draws a usable figure."""
    result = ModelResult()
    if attempts < 1:
        return result
    for stale in run.run_dir.glob(f"{SCRATCH_PREFIX}*"):  # left by a crashed earlier writeup
        shutil.rmtree(stale, ignore_errors=True)
    staging = stage_run(run)
    files = listing(run, staging)
    system = render_from(PROMPTS, "plot_system", max_figures=max_figures)
    convo: list[dict[str, Any]] = [{"role": "user", "content": render_from(
        PROMPTS, "plot_program", idea=idea_text(run), metric=run.metric, direction=run.direction,
        stages=stage_text(run), files=files, max_figures=max_figures)}]
    for number in range(1, attempts + 1):
        try:
            text, program = llm.ask_code(role, system, convo, CallContext(stage="writeup"))
        except LLMCallError as e:
            log.warning("figures: the %s model gave no plotting program (%s); using our own figures", role, e)
            result.attempts.append(Attempt(number, False, f"no program: {e}"))
            break
        record = out_dir / "model" / f"attempt_{number}"
        record.mkdir(parents=True, exist_ok=True)
        (record / PROGRAM).write_text(program)
        try:
            drawn, skipped = _run_program(program, run, staging, out_dir, record, sandbox, timeout_s, max_figures)
        except ProgramFailed as e:
            error = str(e)
            log.info("figures: plotting program, attempt %d/%d failed: %s", number, attempts,
                     error.splitlines()[0] if error else "")
            result.attempts.append(Attempt(number, False, error))
            convo += [{"role": "assistant", "content": text},
                      {"role": "user", "content": render_from(PROMPTS, "plot_retry", error=error)}]
            continue
        log.info("figures: plotting program, attempt %d/%d drew %d usable figures", number, attempts, len(drawn))
        result.attempts.append(Attempt(number, True, None, len(drawn)))
        result.drawn, result.skipped = drawn, skipped
        break
    return result


def _run_program(program: str, run: RunResults, staging: Staging, out_dir: Path, record: Path,
                 sandbox: SandboxConfig, timeout_s: float, max_figures: int) -> tuple[list[Drawn], list[Skipped]]:
    # The scratch folder sits directly in the run directory: the sandbox hides a scratch folder's parent (and /tmp),
    # so under bubblewrap the program sees an empty run directory around its own folder.
    workdir = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=run.run_dir))
    try:
        staging.copy_into(run.run_dir, workdir)
        (workdir / "figures").mkdir()
        (workdir / PROGRAM).write_text(program)
        outcome = run_sandboxed([sys.executable, PROGRAM], workdir, sandbox, timeout_s=timeout_s)
        for name in ("stdout.txt", "stderr.txt"):
            if (workdir / name).is_file():
                shutil.copyfile(workdir / name, record / name)
        if outcome.exit_code != 0 or outcome.killed_reason:
            what = f"{outcome.exc_type}: {outcome.exc_message}" if outcome.exc_type else \
                f"exit status {outcome.exit_code}"
            raise ProgramFailed(f"The program failed ({what}).\nLast lines of its stderr:\n"
                                f"{outcome.stderr[-ERROR_CHARS:]}")
        return _collect(workdir, staging, out_dir, program, max_figures)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _entries(workdir: Path) -> list[dict[str, Any]]:
    index = workdir / "figures" / "figures.json"
    if not index.is_file():
        raise ProgramFailed("figures/figures.json is missing: write it, a list of {\"file\", \"caption\", \"data\"} "
                            "objects, one per PNG.")
    try:
        raw = json.loads(index.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProgramFailed(f"figures/figures.json is not valid JSON: {e}") from None
    raw = raw.get("figures", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ProgramFailed("figures/figures.json must hold a JSON list of {\"file\", \"caption\", \"data\"} "
                            "objects.")
    return raw


def _collect(workdir: Path, staging: Staging, out_dir: Path, program: str,
             max_figures: int) -> tuple[list[Drawn], list[Skipped]]:
    entries, problems, drawn, skipped = _entries(workdir), [], [], []
    listed = set()
    for n, entry in enumerate(entries):
        if n >= 2 * max_figures:
            skipped.append(Skipped(f"model_{n}", f"entry {n + 1} of figures.json: far more figures than the "
                                                 f"{max_figures} asked for"))
            continue
        name = Path(str(entry.get("file", ""))).name
        listed.add(name)
        src = workdir / "figures" / name
        caption = " ".join(str(entry.get("caption") or "").split())[:600]
        key = f"model_{re.sub(r'[^A-Za-z0-9_-]+', '_', Path(name).stem)}"
        problem = None
        if not name.lower().endswith(".png") or not src.is_file() or src.is_symlink():
            problem = f"{name or '(no file name)'}: listed in figures.json but no such PNG in figures/"
        elif src.stat().st_size > MAX_PNG_BYTES:
            problem = f"{name}: larger than {MAX_PNG_BYTES >> 20} MB"
        elif not caption:
            problem = f"{name}: no caption in figures.json"
        else:
            try:
                problem = blank_reason(gray(src))
                problem = f"{name}: {problem}" if problem else None
            except (OSError, ValueError, SyntaxError) as e:
                problem = f"{name}: not a readable PNG ({e})"
        if problem:
            problems.append(problem)
            skipped.append(Skipped(key, problem))
            continue
        dest = out_dir / f"{key}.png"
        shutil.copyfile(src, dest)
        data = entry.get("data") if isinstance(entry.get("data"), list) else []
        sources = staging.sources([str(d) for d in data]) or _named_in(program, staging)
        drawn.append(Drawn(key, dest, caption, sources))
    for png in sorted((workdir / "figures").glob("*.png")):
        if png.name not in listed:
            skipped.append(Skipped(f"model_{png.stem}", f"{png.name}: not listed in figures.json (no caption)"))
    if not drawn:
        detail = "; ".join(problems) or "figures.json lists no figure"
        raise ProgramFailed(f"The program ran but no usable figure came out: {detail}.")
    return drawn, skipped


def _named_in(program: str, staging: Staging) -> list[str]:
    """The result files a program names, when its figures.json did not say: full paths, else file names."""
    exact = [src for dest, src in staging.files.items() if dest in program or dest[len("data/"):] in program]
    if exact:
        return exact
    names = {Path(dest).name for dest in staging.files if f"'{Path(dest).name}'" in program
             or f'"{Path(dest).name}"' in program}
    return [src for dest, src in staging.files.items() if Path(dest).name in names] or list(staging.files.values())
