"""A non-editable install works from any directory: conf/ and templates/ ship inside the package and are found
through it, not through the source tree."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
SITE = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "hydra").is_dir())


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[str, Path]:
    """(python, its site-packages) of a fresh virtual environment outside the repository, where the project's wheel
    is installed; the dependencies come from this environment."""
    tmp_path = tmp_path_factory.mktemp("install")
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    # the checkout's files as a fresh clone has them: no build/ or *.egg-info of an earlier install to fill gaps
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for rel in listed:
        if (REPO / rel).is_symlink() or (REPO / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, source / rel, follow_symlinks=False)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(source)], check=True, cwd=tmp_path, capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    site.joinpath("libraries.pth").write_text(SITE + "\n")  # the dependencies, not this project's source tree
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    str(next(wheels.glob("*.whl")))], check=True, capture_output=True)
    return str(venv / "bin" / "python"), site


def test_wheel_installed_elsewhere_runs_the_pipeline_from_another_directory(tmp_path, installed):
    python, site = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([python, "-c", "import engine; print(engine.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    res = subprocess.run([python, "-m", "engine.launch", "+topic=grokking", "pipeline.phases=[ideas]", "tracking=none",
                          "hydra.run.dir=run"], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    config = (elsewhere / "run" / "config.yaml").read_text()
    assert "templates/grokking" in config and "max_nodes: 20" in config  # conf/ came from the package
    idea = json.loads((elsewhere / "run" / "idea.json").read_text())
    assert idea["Name"] == "batch_size_grokking"  # the shipped template's first seed idea


def test_every_benchmark_runs_from_the_wheel(tmp_path, installed):
    """No benchmark imports from tests/ (not installed), and the data they read ships in the wheel: the ICLR ratings,
    the fault programs and the v1 toy template."""
    python, site = installed
    env = os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "WANDB_MODE": "offline"}
    imported = subprocess.run([python, "-c", IMPORT_ALL], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert "benchmarks.fail_fast" in imported.stdout and "benchmarks.faults.llm_kinds" in imported.stdout
    assert "tests" not in imported.stdout.split()  # nothing pulled the test suite in
    shutil.copy(REPO / "tests" / "fixtures" / "v1_gpt4o_fewshot1_reflect5_ensemble5.csv", tmp_path / "v1.csv")
    scored = subprocess.run([python, "-m", "benchmarks.iclr_review", "--score", "v1.csv", "--bootstrap", "50"],
                            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "accuracy=0.696" in scored.stdout  # the published anchor, from the ratings file in the wheel
    faults = subprocess.run([python, "-m", "benchmarks.faults", "--kinds", "bad-config,no-experiment", "--repeat", "1",
                             "--out", "faults"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert faults.returncode == 0, faults.stderr[-3000:]
    rows = {r["key"]: r for r in json.loads((tmp_path / "faults.json").read_text())["kinds"]}
    assert rows["bad-config"]["finished"] == "expected error" and rows["no-experiment"]["finished"] == \
        "expected error", rows  # the toy template came from the wheel, and each launch was refused as it should be
    for shipped in ("faults/programs/exhaust.py", "templates/tiny/experiment.py", "templates/v2_node/plot.py",
                    "data/smoke_run/config.yaml", "data/v1_template/latex/template.tex"):
        assert (site / "benchmarks" / shipped).is_file(), shipped


IMPORT_ALL = """
import importlib, pkgutil, sys
import benchmarks
names = sorted(m.name for m in pkgutil.walk_packages(benchmarks.__path__, "benchmarks."))
for name in names:
    importlib.import_module(name)
print(" ".join(names), " ".join(sorted({n.split(".")[0] for n in sys.modules})))
"""
