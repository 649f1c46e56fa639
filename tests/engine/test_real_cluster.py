"""A real Ray cluster made of separate processes: `ray start --head` and a second `ray start --address=...` whose
interpreter cannot import this project (its own virtual environment, PYTHONPATH without the project); the engine
is launched from a third directory with cluster=ray and must run nodes on both, the second importing the packages
Ray shipped (py_modules)."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO

pytestmark = pytest.mark.slow
SITE = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "ray").is_dir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(python: str, args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """`ray start ... --block`: the node lives as long as this process; terminating it stops the node's own
    processes and nobody else's. Returns once the node says it is up (its output goes to cwd/ray_start.log)."""
    cmd = [python, "-c", "import sys; from ray.scripts.scripts import main; sys.exit(main())", "start", "--block",
           "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0", *args]
    log = cwd / "ray_start.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "will now block forever" not in log.read_text():  # printed once the node's processes are running
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            raise AssertionError(f"ray start did not come up:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def test_engine_on_a_cluster_of_separate_ray_processes(tmp_path):
    port = free_port()
    # a real multi-node cluster (the simulated one's loopback switch, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, refuses
    # a second node); --node-ip-address keeps every node on loopback
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS",
                                                             "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")} | {
        "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    # the second machine: an interpreter of its own that sees the installed libraries (ray, torch: a .pth file
    # naming their folder) but not this project (the editable install's own .pth is not read from there)
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    next(bare.glob("lib/python3*/site-packages")).joinpath("libraries.pth").write_text(SITE + "\n")
    worker_env = base
    check = subprocess.run([str(bare / "bin" / "python"), "-c", "import ray, engine"], env=worker_env,
                           cwd=tmp_path, capture_output=True, text=True)
    assert "No module named 'engine'" in check.stderr  # it really cannot import the project by itself
    dirs = {name: tmp_path / name for name in ("head", "worker", "elsewhere")}
    for d in dirs.values():
        d.mkdir()
    nodes = [start_node(sys.executable, ["--head", f"--port={port}", "--include-dashboard=false"], dirs["head"],
                        base)]
    try:
        nodes.append(start_node(str(bare / "bin" / "python"), [f"--address=127.0.0.1:{port}"], dirs["worker"],
                                worker_env))
        run_dir = tmp_path / "run"
        deadline = time.monotonic() + 120
        while True:  # both nodes joined
            status = subprocess.run([sys.executable, "-c", "import ray; ray.init(address='auto', logging_level=40);"
                                     "print(len([n for n in ray.nodes() if n['Alive']]))"], env=base | {
                                     "RAY_ADDRESS": f"127.0.0.1:{port}"}, capture_output=True, text=True, cwd=tmp_path)
            if status.stdout.strip() == "2":
                break
            assert time.monotonic() < deadline, status.stderr[-2000:]
            time.sleep(0.5)
        # the toy v1 template: what runs in the nodes is not the point here, where they run is
        res = subprocess.run([sys.executable, "-m", "engine.launch", "+topic=template",
                              f"topic.path={FIXTURES / 'v1_template'}", "topic.metric=val_loss", "cluster=ray",
                              f"cluster.address=127.0.0.1:{port}", "cluster.slots=2", "pipeline.phases=[experiments]",
                              "stages.run=[initial]", "stages.initial.max_nodes=4",
                              "stages.initial.offline_max_nodes=4", "stages.initial.run_to_budget=true",
                              "stages.num_seeds=1", "tracking=none", f"hydra.run.dir={run_dir}"],
                             cwd=dirs["elsewhere"], env=base, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    finally:
        for proc in reversed(nodes):
            proc.terminate()
        for proc in nodes:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
    runners = [json.loads(f.read_text()) for f in (run_dir / "nodes").glob("*/runner.json")]
    assert len(runners) == 4
    assert len({r["node_id"] for r in runners}) == 2, "nodes ran on both Ray nodes"
    shipped = [r["engine"] for r in runners if not r["engine"].startswith(str(REPO))]
    assert shipped and all("runtime_resources" in p for p in shipped), runners
    assert json.loads((run_dir / "summary.json").read_text())["nodes"]["good"] == 4
