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


def pytest_collection_modifyitems(config, items):
    """Files with a slow test run first. The suite runs on two pytest-xdist workers, a file at a time
    (pyproject.toml); handing out the long files first leaves only short ones for the end, so the two workers
    finish close together instead of one waiting on the other's last long file."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the order within each group is kept


@pytest.fixture
def v1_template(tmp_path: Path) -> Path:
    """A writable copy of the v1-format toy template (no manifest)."""
    dest = tmp_path / "v1_template"
    shutil.copytree(FIXTURES / "v1_template", dest)
    return dest


# The fixture's plot.py imports matplotlib (a second or so per node in the sandbox): where the node's figure is not
# the point, this one writes a real (1x1) PNG with the standard library, so plots are still made and collected.
QUICK_PLOT = """import struct, zlib

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(b"\\x00\\x00")) + chunk(b"IEND", b""))
open("val_loss.png", "wb").write(png)
"""


@pytest.fixture
def quick_template(v1_template: Path) -> Path:
    """The v1 toy template with a plot.py that needs no matplotlib (for runs whose figures are not the point)."""
    (v1_template / "plot.py").write_text(QUICK_PLOT)
    return v1_template


def one_stage(max_nodes: int) -> list[str]:
    """Overrides for a run of stage 1 only, to exactly `max_nodes` nodes (no early completion, no seeds), and
    of the experiment phase only (the pipeline's other phases have tests of their own)."""
    return ["pipeline.phases=[experiments]", "stages.run=[initial]", f"stages.initial.max_nodes={max_nodes}",
            f"stages.initial.offline_max_nodes={max_nodes}", "stages.initial.run_to_budget=true", "stages.num_seeds=1"]


# Runs whose point is not Ray put their nodes in sandboxed subprocesses of the launcher (cluster=threads): a
# private Ray instance costs 5 to 30 s to start and stop on a loaded 2-core machine. Ray itself is run by
# test_launch.py (a killed runner, misbehaving nodes), the SIGTERM resume, the grokking smoke run (the README's main
# job as it is), the sweep (runs with a model on one Ray instance), the ICLR benchmark,
# tests/engine/test_ray_engine.py and tests/engine/test_real_cluster.py.
NO_RAY = "cluster=threads"


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
