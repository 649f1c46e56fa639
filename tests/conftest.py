import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Ray on a test machine: no auth prompt, no usage reporting (inherited by launched runs)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("WANDB_MODE", "offline")
# simulated multi-machine clusters stay on loopback (Ray would otherwise use the machine's network address)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def v1_template(tmp_path: Path) -> Path:
    """A writable copy of the v1-format toy template (no manifest)."""
    dest = tmp_path / "v1_template"
    shutil.copytree(FIXTURES / "v1_template", dest)
    return dest


def one_stage(max_nodes: int) -> list[str]:
    """Overrides for a run of stage 1 only, to exactly `max_nodes` nodes (no early completion, no seeds), and
    of the experiment phase only (the pipeline's other phases have tests of their own)."""
    return ["pipeline.phases=[experiments]", "stages.run=[initial]", f"stages.initial.max_nodes={max_nodes}",
            f"stages.initial.offline_max_nodes={max_nodes}", "stages.initial.run_to_budget=true", "stages.num_seeds=1"]


def launch_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "engine.launch", *overrides]


def launch(*overrides: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real entry point from the repo root, as a user would."""
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.run(launch_cmd(*overrides), cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env)


def run_config(*overrides: str):
    """The typed settings of `python -m engine.launch +topic=grokking <overrides>`, without launching."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import engine.launch  # noqa: F401 - registers the config's resolvers
    from engine import config as config_mod

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("config", overrides=["+topic=grokking", "tracking=none", *overrides])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    return config_mod.build(resolved)
