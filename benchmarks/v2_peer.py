"""Runs AI-Scientist-v2's own tree search (its experiment phase) for benchmarks/v2_compare.py.

    <v2 venv>/bin/python benchmarks/v2_peer.py --v2 PATH --work DIR --idea IDEA.json --workers 2 --iters 12 \
        --seeds 3

Executed by v2's interpreter, not this project's: it imports only the standard library, PyYAML and v2's code from
the checkout at --v2, nothing of this project. It does what v2's launch_scientist_bfts.py does before the
experiments (the idea as idea.json, `edit_bfts_config_file` on v2's bfts_config.yaml) and then calls v2's
`perform_experiments_bfts` on that config, with the model's requests going to the loopback server named by
OPENAI_BASE_URL. It does not run launch_scientist_bfts.py itself: that script imports torch at start-up, goes on to
plot aggregation, writeup and review, and at its end sends SIGTERM to every process on the machine whose command line
contains "python" (launch_scientist_bfts.py:347-358).

Config changes (values of v2's own config keys): agent.num_workers, agent.stages.stage1_max_iters,
agent.multi_seed_eval.num_seeds, the code/feedback/vlm_feedback/report models (one name for the loopback server),
and generate_report: false (v2's report, log_summarization.overall_summarize, unpacks four stages' summaries
(log_summarization.py:359) and fails on a run of stage 1 only).

One run-time patch: v2 ends stage 1 at its first working node (agent_manager.py:433-442, in
`AgentManager._check_stage_completion`); the patch lets stage 1 run to stage1_max_iters instead (the original
method still decides once the budget is spent, and so ends the run after stage 1's seed evaluation:
agent_manager.py:414-429 sets current_stage to None), as this engine's stage 1 runs with run_to_budget=true.

Writes DIR/timing.json: when the process started, when the experiment phase started and ended.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

STARTED = time.time()


def patch_stage_one(agent_manager_module) -> None:
    """Stage 1 runs to its budget instead of ending at its first working node."""
    manager = agent_manager_module.AgentManager
    original = manager._check_stage_completion

    def to_budget(self, stage):
        if stage.stage_number == 1 and len(self.journals[stage.name].nodes) < stage.max_iterations:
            return False, "benchmark: stage 1 runs to its budget"
        return original(self, stage)

    manager._check_stage_completion = to_budget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--v2", required=True, help="AI-Scientist-v2 checkout")
    ap.add_argument("--work", required=True, help="an empty folder for the run")
    ap.add_argument("--idea", required=True, help="the idea (v2's JSON fields)")
    ap.add_argument("--workers", type=int, required=True)
    ap.add_argument("--iters", type=int, required=True, help="stage 1's budget (stage1_max_iters)")
    ap.add_argument("--seeds", type=int, required=True, help="multi_seed_eval.num_seeds")
    ap.add_argument("--model", default="loopback-model")
    args = ap.parse_args()

    root = os.path.abspath(args.v2)
    sys.path.insert(0, root)
    os.environ["AI_SCIENTIST_ROOT"] = root
    import yaml
    from ai_scientist.treesearch import agent_manager
    from ai_scientist.treesearch.bfts_utils import edit_bfts_config_file
    from ai_scientist.treesearch.perform_experiments_bfts_with_agentmanager import perform_experiments_bfts

    patch_stage_one(agent_manager)
    idea_dir = os.path.abspath(args.work)
    os.makedirs(idea_dir, exist_ok=True)
    idea_json = os.path.join(idea_dir, "idea.json")
    with open(args.idea) as f, open(idea_json, "w") as out:
        json.dump(json.load(f), out, indent=4)
    config_path = edit_bfts_config_file(os.path.join(root, "bfts_config.yaml"), idea_dir, idea_json)
    with open(config_path) as f:
        config = yaml.safe_load(f)
    agent = config["agent"]
    agent["num_workers"] = args.workers
    agent["stages"]["stage1_max_iters"] = args.iters
    agent["multi_seed_eval"]["num_seeds"] = args.seeds
    for role in ("code", "feedback", "vlm_feedback"):
        agent[role]["model"] = args.model
    config["report"]["model"] = args.model
    config["generate_report"] = False
    with open(config_path, "w") as f:
        yaml.dump(config, f)

    phase_start = time.time()
    perform_experiments_bfts(config_path)
    phase_end = time.time()
    with open(os.path.join(idea_dir, "timing.json"), "w") as f:
        json.dump({"process_start": STARTED, "phase_start": phase_start, "phase_end": phase_end}, f)


if __name__ == "__main__":
    main()
