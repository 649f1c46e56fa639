"""The v2 comparison's own logic: the loopback model's answers, the node program, the measures. The checks against
v2's code need a checkout (AI_SCIENTIST_V2=/path/to/AI-Scientist-v2) and are skipped without one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.loopback_model import PROGRAM, LoopbackModel, tool_answer
from benchmarks.v2_compare import figures, spans_in
from engine.experiments.llm_proposer import FEEDBACK_TOOL, SELECT_TOOL
from engine.experiments.plot_critique import CRITIQUE_TOOL

V2 = Path(os.environ.get("AI_SCIENTIST_V2", "/work/v2/AI-Scientist-v2"))


def chat(text: str, tool: str | None = None) -> dict:
    body: dict = {"messages": [{"role": "user", "content": text}]}
    if tool:
        body["tools"] = [{"type": "function", "function": {"name": tool}}]
    return body


def test_programs_are_the_node_program_with_the_benchmarks_sleep_and_a_new_trial_each():
    model = LoopbackModel(latency_s=0, program_s=0.5)
    kinds, replies = zip(*(model.answer(chat("Write a first implementation of the experiment.")) for _ in range(2)))
    assert kinds == ("program", "program")
    assert "SLEEP_S = 0.5\n" in replies[0]["text"] and "TRIAL = 1\n" in replies[0]["text"]
    assert "TRIAL = 2\n" in replies[1]["text"]
    assert replies[0]["text"].count("```python") == 1


def test_v2s_requests_for_a_metric_parser_and_a_plot_get_programs_for_those_jobs():
    model = LoopbackModel(0, 8)
    kind, reply = model.answer(chat("# Introduction\nWrite code to load and analyze the metrics from "
                                    "experiment_data.npy."))
    assert kind == "metric parser" and "np.load" in reply["text"]
    kind, reply = model.answer(chat("# Instructions\n## Plotting code guideline\n- Save all plots to working_dir"))
    assert kind == "plotting code" and "sim_val_loss.png" in reply["text"]
    kind, reply = model.answer(chat("... SUCCESSFULLY_TESTED_DATASETS: <list> ..."))
    assert reply["text"].splitlines()[1] == "SUCCESSFULLY_TESTED_DATASETS: sim"


@pytest.mark.parametrize("tool", [FEEDBACK_TOOL, SELECT_TOOL, CRITIQUE_TOOL])
def test_answers_to_this_engines_tools_hold_their_required_fields(tool):
    answer = tool_answer(tool.name, "- step 7: val_loss = 0.5", images=1)
    assert answer is not None and set(tool.parameters["required"]) <= set(answer)


def test_an_unknown_tool_is_an_error_not_a_made_up_answer():
    kind, reply = LoopbackModel(0, 8).answer(chat("hello", tool="something_new"))
    assert kind == "unknown tool something_new" and reply["status"] == 400


def test_v2s_plot_check_gets_one_analysis_per_image():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "analyze"}] +
                          [{"type": "image_url", "image_url": {"url": "data:,"}}] * 3}],
            "tools": [{"type": "function", "function": {"name": "analyze_experiment_plots"}}]}
    kind, reply = LoopbackModel(0, 8).answer(body)
    assert len(reply["tool"]["input"]["plot_analyses"]) == 3


def test_the_node_program_writes_both_systems_results_and_its_span(tmp_path):
    code = PROGRAM.replace("SLEEP_S = 8.0", "SLEEP_S = 0.2")
    (tmp_path / "experiment.py").write_text(code)
    res = subprocess.run([sys.executable, "experiment.py", "--out_dir=run_0"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "run_0" / "final_info.json").read_text())["sim"]["means"]["val_loss"] == 1.0
    assert (tmp_path / "working" / "experiment_data.npy").is_file()
    [(start, end)] = spans_in(res.stdout)
    assert end - start >= 0.2


def test_figures_from_spans():
    spans = [(10.0, 18.0), (10.5, 18.5), (20.0, 28.0)]  # two workers, a 1.5 s hole before the third program
    f = figures(spans, launched=0.0, exited=40.0, workers=2)
    assert f["node_phase_s"] == 18.0 and f["launch_to_first_program_s"] == 10.0 and f["end_to_end_s"] == 40.0
    assert f["slot_use"] == pytest.approx(24 / 36, abs=0.001)


@pytest.mark.skipif(not (V2 / "ai_scientist" / "treesearch").is_dir(),
                    reason="no AI-Scientist-v2 checkout (set AI_SCIENTIST_V2=/path/to/AI-Scientist-v2)")
def test_v2s_code_has_what_the_benchmark_answers_and_patches():
    tree = V2 / "ai_scientist" / "treesearch"
    source = "\n".join(p.read_text() for p in tree.rglob("*.py"))
    for name in ("submit_review", "parse_metrics", "analyze_experiment_plots", "select_best_implementation",
                 "evaluate_stage_completion", "summarize_experiment"):
        assert f'name="{name}"' in source or f'"name": "{name}"' in source, name
    for phrase in ("load and analyze the metrics from experiment_data.npy", "Plotting code guideline",
                   "propose meaningful evaluation metrics", "SUCCESSFULLY_TESTED_DATASETS",
                   "summarizing experimental progress"):
        assert phrase in source, phrase
    manager = (tree / "agent_manager.py").read_text().splitlines()
    # the stage-1 rule the benchmark patches: complete at the first working node (docs/benchmarks-v2.md)
    assert "if stage.stage_number == 1:" in manager[433] and "len(journal.good_nodes) > 0" in manager[434]
    assert "def _check_stage_completion" in (tree / "agent_manager.py").read_text()
