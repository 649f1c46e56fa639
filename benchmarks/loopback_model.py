"""The model of the v2 comparison (benchmarks/v2_compare.py): one responder for the loopback OpenAI-format server
(engine/llm/loopback.py) that answers both this engine and AI-Scientist-v2, each request after the same latency.

It answers as a cooperative model would: every request for a program gets the node program of
benchmarks/templates/v2_node/experiment.py (with its sleep set to the benchmark's program time and a new TRIAL
value), every run is judged working, every plot valid; v2's requests for a metric-parsing program and a plotting
program get small programs that do those jobs; v2's stage check is told the stage is not complete (so stage 1 runs
to its budget, as this engine's does with run_to_budget). Requests are counted by kind.
"""
from __future__ import annotations

import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

PROGRAM = (Path(__file__).resolve().parent / "templates" / "v2_node" / "experiment.py").read_text()

METRIC_PARSER = """import os
import numpy as np

data = np.load(os.path.join(os.getcwd(), "working", "experiment_data.npy"), allow_pickle=True).item()
for dataset, record in data.items():
    print(f"Dataset: {dataset}")
    print(f"validation loss: {record['metrics']['val'][-1]:.4f}")
"""

# a real 1x1 PNG written with the standard library (the v2 plotting request asks for matplotlib; the figure's
# content is not what is measured, its start-up time would be)
PLOTTER = """import os
import struct
import zlib

working_dir = os.path.join(os.getcwd(), "working")
os.makedirs(working_dir, exist_ok=True)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(b"\\x00\\x00")) + chunk(b"IEND", b""))
open(os.path.join(working_dir, "sim_val_loss.png"), "wb").write(png)
"""


def request_text(body: dict[str, Any]) -> str:
    """The text of every message of a chat request (image parts left out)."""
    parts = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
    return "\n".join(parts)


def image_count(body: dict[str, Any]) -> int:
    return sum(1 for m in body.get("messages") or [] if isinstance(m.get("content"), list)
               for c in m["content"] if isinstance(c, dict) and c.get("type") == "image_url")


def _first(pattern: str, text: str, default: str) -> str:
    found = re.search(pattern, text)
    return found.group(1) if found else default


def tool_answer(name: str, text: str, images: int) -> dict[str, Any] | None:
    """The arguments of a forced tool call, for the tools both systems use; None for an unknown tool."""
    loss = float(_first(r"validation loss: ([0-9.]+)", text, "1.0"))
    answers: dict[str, Any] = {
        # this engine (engine/experiments/llm_proposer.py, engine/experiments/plot_critique.py)
        "report": {"is_bug": False, "analysis": "The run finished and reported its validation loss."},
        "choose": {"step": int(_first(r"step (\d+)", text, "0")), "reason": "the lowest validation loss"},
        "critique": {"plots": [{"file": "val_loss.png", "analysis": "One readable loss figure."}],
                     "summary": "The figure shows the reported loss.", "valid": True},
        # AI-Scientist-v2 (ai_scientist/treesearch/)
        "submit_review": {"is_bug": False, "summary": ""},
        "parse_metrics": {"valid_metrics_received": True, "metric_names": [{
            "metric_name": "validation loss", "lower_is_better": True, "description": "the validation loss",
            "data": [{"dataset_name": "sim", "final_value": loss, "best_value": loss}]}]},
        "analyze_experiment_plots": {"plot_analyses": [{"analysis": "One readable loss figure."}] * max(1, images),
                                     "valid_plots_received": True,
                                     "vlm_feedback_summary": "The figure shows the reported loss."},
        "select_best_implementation": {"selected_id": _first(r"ID: (\w+)", text, ""),
                                       "reasoning": "the lowest validation loss"},
        "evaluate_stage_completion": {"is_complete": False, "reasoning": "the stage runs to its budget",
                                      "missing_criteria": ["the node budget is not spent"]},
        "summarize_experiment": {"findings": "The loss went down.", "significance": "None (a benchmark).",
                                 "next_steps": "Another TRIAL value."},
    }
    return answers.get(name)


class LoopbackModel:
    """`responder(path, body) -> reply` for FakeLLMServer; waits `latency_s` before every answer."""

    def __init__(self, latency_s: float, program_s: float):
        self.latency_s, self.program_s = latency_s, program_s
        self.calls: Counter[str] = Counter()
        self.trials = 0
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()

    def __call__(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        time.sleep(self.latency_s)
        kind, reply = self.answer(body)
        with self.lock:
            self.calls[kind] += 1
        return reply

    def answer(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        text = request_text(body)
        tools = body.get("tools") or []
        if tools:
            name = tools[0].get("function", {}).get("name", "?")
            answer = tool_answer(name, text, image_count(body))
            if answer is None:
                return f"unknown tool {name}", {"status": 400, "message": f"loopback model: no answer for {name}"}
            return name, {"tool": {"name": name, "input": answer}}
        if "Reply with OK." in text:
            return "preflight", {"text": "OK"}
        if "load and analyze the metrics from experiment_data.npy" in text:
            return "metric parser", _code("Load the saved data and print the final loss per dataset.", METRIC_PARSER)
        if "Plotting code guideline" in text:
            return "plotting code", _code("Draw the loss figure into the working directory.", PLOTTER)
        if "propose meaningful evaluation metrics" in text:
            return "metric definition", {"text": "- name: validation loss\n- maximize: false\n"
                                                 "- description: the loss on held-out data"}
        if "SUCCESSFULLY_TESTED_DATASETS" in text:
            return "datasets tested", {"text": "REASONING: the figure shows the loss.\n"
                                               "SUCCESSFULLY_TESTED_DATASETS: sim"}
        if "summarizing experimental progress" in text:
            return "journal summary", {"text": "Every run so far worked; the loss falls with TRIAL."}
        with self.lock:
            self.trials += 1
            trial = self.trials
        program = PROGRAM.replace("SLEEP_S = 8.0", f"SLEEP_S = {self.program_s}").replace(
            "TRIAL = 0", f"TRIAL = {trial}")
        return "program", _code(f"Run the experiment again with TRIAL = {trial}.", program)


def _code(plan: str, code: str) -> dict[str, Any]:
    return {"text": f"{plan}\n\n```python\n{code}```\n"}
