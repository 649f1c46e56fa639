"""Limits the kernel enforces (a cgroup per node where cgroups work), the directory caps, the GPU device and
address-space rules, and that no cgroup outlives its node."""
import math
import os
import shutil
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from engine.config import shipped_sandbox
from engine.sandbox import cgroups
from engine.sandbox import run as sandbox
from engine.sandbox.bwrap import gpu_devices
from engine.sandbox.run import run_sandboxed

HAVE_BWRAP = shutil.which("bwrap") is not None
MODE = "always" if HAVE_BWRAP else "never"
needs_cgroups = pytest.mark.skipif(cgroups.mode() == "none", reason="cgroups cannot be used here")


def run(tmp_path, code, env=None, **cfg):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (work / "prog.py").write_text(textwrap.dedent(code))
    return run_sandboxed([sys.executable, "prog.py"], work, shipped_sandbox(use_bwrap=MODE, **cfg), extra_env=env)


@needs_cgroups
@pytest.mark.parametrize("how", ["shm", "memfd"])
def test_memory_the_watchdog_cannot_see_is_limited_by_the_cgroup(tmp_path, how):
    target = "open('/dev/shm/hog', 'wb')" if how == "shm" else "os.fdopen(os.memfd_create('hog'), 'wb')"
    code = f"""
    import os
    f = {target}
    for _ in range(40):
        f.write(b"x" * 2**26)  # 2.5 GB in all, in 64 MB steps
        f.flush()
    print("held it all")
    """
    out = run(tmp_path, code, memory_gb=0.5, timeout_s=60)
    assert out.killed_reason == "memory" and out.exc_type == "MemoryError", (out.stdout, out.stderr)
    assert "held it all" not in out.stdout


@needs_cgroups
def test_fork_bomb_stops_at_pids_max(tmp_path):
    code = """
    import os, time
    while True:
        try:
            if os.fork() == 0:
                time.sleep(60)
        except OSError:
            time.sleep(60)
    """
    # stopped at pids.max within 20 s of starting: the sandbox's own timeout would otherwise have won
    out = run(tmp_path, code, max_procs=40, timeout_s=20)
    assert out.killed_reason == "processes" and out.exc_type == "ProcessLimit"


def test_many_files_are_stopped(tmp_path):
    code = """
    import os, time
    os.makedirs("many", exist_ok=True)
    for i in range(20000):
        open(f"many/{i}", "w").close()
    time.sleep(60)
    """
    out = run(tmp_path, code, max_files=2000, timeout_s=60)
    assert out.killed_reason == "disk" and out.exc_type == "DiskLimit"


def test_a_directory_too_big_is_stopped(tmp_path):
    code = """
    import time
    for i in range(40):
        with open(f"part{i}.bin", "wb") as f:
            f.write(b"x" * 2**22)  # 160 MB in files of 4 MB, each under the file-size cap
    time.sleep(60)
    """
    out = run(tmp_path, code, max_dir_gb=0.05, timeout_s=60)
    assert out.killed_reason == "disk" and "0.05 GB" in out.exc_message


@needs_cgroups
def test_no_cgroup_outlives_its_node(tmp_path, monkeypatch):
    made, create = [], cgroups.create
    monkeypatch.setattr(cgroups, "create", lambda *a, **k: made.append(create(*a, **k)) or made[-1])
    run(tmp_path, "print('ok')")
    run(tmp_path, "import time; time.sleep(60)", timeout_s=1)
    run(tmp_path, "import os\nwhile True:\n    os.fork()\n", max_procs=16, timeout_s=20)
    folders = [d for cg in made for d in cg.dirs.values()]
    assert len(made) == 3 and len(folders) >= 6
    assert not any(d.exists() for d in folders)


def test_no_address_space_cap_for_a_gpu_node(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "create", lambda *a, **k: None)  # the fallback path: rlimits and the watchdog
    code = "print([line for line in open('/proc/self/limits') if line.startswith('Max address space')][0].split())"
    cpu = run(tmp_path, code, env={"CUDA_VISIBLE_DEVICES": ""}, memory_gb=4).stdout
    gpu = run(tmp_path, code, env={"CUDA_VISIBLE_DEVICES": "0", "ENGINE_GPU_FRACTION": "0.25"}, memory_gb=4).stdout
    assert str(4 * 2**30) in cpu
    assert "'unlimited'" in gpu and str(4 * 2**30) not in gpu


def test_gpu_nodes_get_only_their_own_device(tmp_path):
    dev, gpus = tmp_path / "dev", tmp_path / "gpus"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidia2", "nvidiactl", "nvidia-uvm", "nvidia-caps"):
        (dev / name).touch()
    # the driver's order (by PCI bus) gives each index its device minor
    for bus, minor in (("0000:3b:00.0", 2), ("0000:5e:00.0", 0), ("0000:86:00.0", 1)):
        (gpus / bus).mkdir(parents=True)
        (gpus / bus / "information").write_text(f"Model: H200\nDevice Minor: {minor}\n")
    names = lambda devices: sorted(p.name for p in devices)  # noqa: E731
    devices, visible = gpu_devices("1", dev, gpus)
    assert names(devices) == ["nvidia-uvm", "nvidia0", "nvidiactl"] and visible == "0"
    devices, visible = gpu_devices("0,2", dev, gpus)
    assert names(devices) == ["nvidia-uvm", "nvidia1", "nvidia2", "nvidiactl"] and visible == "0,1"
    assert gpu_devices("", dev, gpus) == ([], None)
    devices, visible = gpu_devices("GPU-8c1d", dev, gpus)  # a UUID cannot be mapped: all, names kept
    assert len(devices) == 5 and visible is None
    assert gpu_devices("0", tmp_path / "no-dev", gpus) == ([], None)  # a machine without GPUs


def test_cgroup_v2_files(tmp_path):
    """On a v2 tree (faked here: the files are plain files) the node's group gets its limits and is killed
    with cgroup.kill."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    cg = cgroups.create(2**30, 64, root=tmp_path)
    d = cg.dirs["unified"]
    assert cg.version == 2 and d.parent == tmp_path and cg.join_files == [str(d / "cgroup.procs")]
    assert (d / "memory.max").read_text() == str(2**30) and (d / "pids.max").read_text() == "64"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (d / "pids.events").write_text("max 0\n")
    (d / "cgroup.kill").write_text("")
    assert cg.oom_killed() and not cg.pids_refused()
    cg.kill()
    assert (d / "cgroup.kill").read_text() == "1"


def test_cgroup_v1_files(tmp_path):
    for controller in ("memory", "pids", "freezer"):
        (tmp_path / controller).mkdir()
        (tmp_path / controller / "cgroup.procs").write_text("")
    (tmp_path / "memory" / "memory.memsw.limit_in_bytes").write_text("")  # swap is accounted here
    cg = cgroups.create(2**30, 64, root=tmp_path)
    assert cg.version == 1 and set(cg.dirs) == {"memory", "pids", "freezer"} and len(cg.join_files) == 3
    mem = cg.dirs["memory"]
    assert (mem / "memory.limit_in_bytes").read_text() == str(2**30)
    assert (cg.dirs["pids"] / "pids.max").read_text() == "64"
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    (cg.dirs["pids"] / "pids.events").write_text("max 5\n")
    assert not cg.oom_killed() and cg.pids_refused()


def test_the_log_says_which_limits_are_in_force(caplog, monkeypatch):
    monkeypatch.setattr(cgroups, "_mode", None)
    with caplog.at_level("INFO", logger="engine.sandbox.cgroups"):
        found = cgroups.mode()
        cgroups.mode()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("node limits:")]
    assert len(lines) == 1 and ("cgroup v" in lines[0] if found != "none" else "rlimits" in lines[0])


def test_the_sandbox_entry_points_run_a_program_name_its_error_and_stop_it(tmp_path):
    """run.py's entry points as the runners and the driver use them: bwrap_path finds bubblewrap where it is
    installed; run_sandboxed runs a program and names its exception (parse_exception reads it from stderr);
    kill_all_running, called from another thread (Ctrl-C, shutdown), stops a program that is still running."""
    cfg = shipped_sandbox(use_bwrap=MODE, timeout_s=120.0)
    assert (sandbox.bwrap_path(cfg) is not None) == HAVE_BWRAP
    failing, sleeping = tmp_path / "failing", tmp_path / "sleeping"
    failing.mkdir()
    sleeping.mkdir()
    out = sandbox.run_sandboxed([sys.executable, "-c", "raise KeyError('no such thing')"], failing, cfg)
    assert out.exit_code != 0 and (out.exc_type, out.exc_message) == ("KeyError", "'no such thing'")
    assert sandbox.parse_exception(out.stderr) == ("KeyError", "'no such thing'")

    ended = {}
    program = "import time; open('started', 'w').close(); time.sleep(120)"
    runner = threading.Thread(target=lambda: ended.update(
        out=sandbox.run_sandboxed([sys.executable, "-c", program], sleeping, cfg)), daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while not (sleeping / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (sleeping / "started").exists(), "the program never started"
    sandbox.kill_all_running()
    runner.join(timeout=30)
    assert not runner.is_alive() and ended["out"].exit_code != 0 and ended["out"].elapsed_s < 60


def test_groups_left_by_a_killed_engine_are_swept(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("memory pids\n")
    stale, fresh = tmp_path / (cgroups.PREFIX + "stale"), tmp_path / (cgroups.PREFIX + "fresh")
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    cgroups.create(None, 8, root=tmp_path)
    assert not stale.exists() and fresh.exists()


@pytest.mark.skipif(bool(list(Path("/dev").glob("nvidia[0-9]*"))), reason="a GPU machine runs the real check")
def test_gpu_check_script_skips_cleanly_without_a_gpu():
    import subprocess
    res = subprocess.run([sys.executable, "scripts/gpu_sandbox_check.py"], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("SKIP:"), res.stdout + res.stderr


def test_mount_points_left_by_a_killed_engine_are_swept(tmp_path):
    from engine.sandbox import bwrap as sandbox_bwrap
    old, new = tmp_path / "engine-stage-old", tmp_path / "engine-stage-new"
    for d in (old, new):
        (d / "0").mkdir(parents=True)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    sandbox_bwrap._sweep_stage_dirs(tmp_path)
    assert not old.exists() and new.exists()


def test_a_program_runs_with_every_limit_lifted(tmp_path):
    """null for each limit, inf for the time: no rlimit, cgroup cap or watchdog check stands in the way, and the
    program's own error is still named."""
    cfg = shipped_sandbox(use_bwrap=MODE, timeout_s=math.inf, memory_gb=None, max_procs=None, max_file_gb=None,
                          max_dir_gb=None, max_files=None, max_artifact_mb=None)
    work = tmp_path / "work"
    work.mkdir()
    code = "import threading; [threading.Thread(target=print).start() for _ in range(4)]; raise OSError('done')"
    out = run_sandboxed([sys.executable, "-c", code], work, cfg)
    assert out.killed_reason is None and (out.exc_type, out.exc_message) == ("OSError", "done")
