"""A non-editable install works from any directory: conf/ and templates/ ship inside the package and are found
through it, not through the source tree."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
SITE = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "hydra").is_dir())


def test_wheel_installed_elsewhere_runs_the_pipeline_from_another_directory(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(REPO)], check=True, cwd=tmp_path, capture_output=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    site.joinpath("libraries.pth").write_text(SITE + "\n")  # the dependencies, not this project's source tree
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    str(next(wheels.glob("*.whl")))], check=True, capture_output=True)
    python, elsewhere = str(venv / "bin" / "python"), tmp_path / "elsewhere"
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
