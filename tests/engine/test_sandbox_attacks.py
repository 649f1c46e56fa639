"""Node programs written as an attacker would, run through the real sandbox: nothing of the host is readable,
writable or reachable, and the calls an escape needs fail with EPERM."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest

from engine.config import shipped_sandbox
from engine.errors import EngineError
from engine.sandbox.run import bwrap_path, run_sandboxed

HAVE_BWRAP = shutil.which("bwrap") is not None
pytestmark = pytest.mark.skipif(not HAVE_BWRAP and not os.environ.get("CI"), reason="bubblewrap not installed")
ROOT = os.geteuid() == 0


def run(work: Path, code: str, **cfg):
    work.mkdir(exist_ok=True)
    (work / "prog.py").write_text(textwrap.dedent(code))
    return run_sandboxed([sys.executable, "prog.py"], work, shipped_sandbox(timeout_s=30, **cfg))


@pytest.fixture
def secret_at_home():
    """A secret file in the home directory (/root when the tests run as root), removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir=Path.home(), prefix=".engine-test-secret-"))
    secret = folder / "credentials"
    secret.write_text("TOPSECRET-7f3a")
    secret.chmod(0o644)  # even readable by everyone, it must not be visible
    folder.chmod(0o755)
    try:
        yield secret
    finally:
        shutil.rmtree(folder)


def test_secrets_of_the_host_are_not_readable(tmp_path, secret_at_home):
    code = f"""
    import os
    for path in [{str(secret_at_home)!r}, "/etc/shadow", "/root/.netrc"]:
        try:
            print("READ", path, open(path).read())
        except OSError as e:
            print("refused", path, type(e).__name__)
    for folder in ["/root", "/home", "/run", "/var", "/sys", "/work", {str(Path.home())!r}]:
        print("LIST", folder, os.listdir(folder) if os.path.isdir(folder) else "absent")
    """
    out = run(tmp_path / "work", code)
    assert out.exit_code == 0, out.stderr
    assert "TOPSECRET" not in out.stdout and "READ" not in out.stdout
    assert out.stdout.count("refused") == 3
    listings = [line for line in out.stdout.splitlines() if line.startswith("LIST")]
    assert len(listings) == 7 and not any(secret_at_home.parent.name in line for line in listings), listings
    # the same program without the sandbox reads it: the test can tell
    assert "TOPSECRET" in run(tmp_path / "plain", code, use_bwrap="never").stdout


def test_writes_outside_the_node_directory_are_refused(tmp_path):
    targets = [tmp_path / "outside.txt", Path("/etc/engine-escaped"), Path("/usr/engine-escaped"),
               Path("/tmp/engine-escaped"), Path("/root/engine-escaped")]
    code = f"""
    import os
    open("inside.txt", "w").write("ok")
    for path in {[str(t) for t in targets]!r}:
        try:
            open(path, "w").write("escaped")
            print("WROTE", path)
        except OSError as e:
            print("refused", path, type(e).__name__)
    """
    out = run(tmp_path / "work", code)
    assert out.exit_code == 0, out.stderr
    assert "WROTE" not in out.stdout
    assert not any(os.path.exists(t) for t in targets)
    assert (tmp_path / "work" / "inside.txt").read_text() == "ok"


def test_mount_namespaces_and_ptrace_are_refused_by_seccomp(tmp_path):
    code = """
    import ctypes, errno, os
    libc = ctypes.CDLL(None, use_errno=True)
    def call(name, *args):
        r = getattr(libc, name)(*args)
        print(name, "ok" if r == 0 else errno.errorcode[ctypes.get_errno()])
    call("mount", b"none", b"/", None, 32 | 1, None)        # remount / read-write (MS_REMOUNT)
    call("mount", b"tmpfs", b"/tmp", b"tmpfs", 0, None)
    call("umount2", b"/tmp", 2)
    call("unshare", 0x10000000)                              # a new user namespace
    call("unshare", 0x00020000)                              # a new mount namespace
    call("ptrace", 0, 0, None, None)                         # PTRACE_TRACEME
    call("syscall", 430, b"tmpfs", 0)                        # fsopen, the new mount API
    status = open("/proc/self/status").read()
    print([l for l in status.splitlines() if l.startswith(("NoNewPrivs", "CapEff", "CapBnd", "Seccomp:"))])
    """
    out = run(tmp_path / "work", code)
    assert out.exit_code == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines()[:7])
    assert set(lines) == {"mount", "umount2", "unshare", "ptrace", "syscall"}
    assert all(v.strip() == "EPERM" for v in out.stdout.splitlines()[:7]
               for v in [v.split(" ", 1)[1]]), out.stdout
    assert "'NoNewPrivs:\\t1'" in out.stdout and "'CapEff:\\t0000000000000000'" in out.stdout
    assert "'CapBnd:\\t0000000000000000'" in out.stdout and "'Seccomp:\\t2'" in out.stdout


def test_host_unix_sockets_are_unreachable(tmp_path):
    folders = [Path(tempfile.mkdtemp(prefix="engine-sock-", dir="/tmp"))]
    if os.access("/run", os.W_OK):
        folders.append(Path(tempfile.mkdtemp(prefix="engine-sock-", dir="/run")))
    servers, paths = [], []
    try:
        for folder in folders:
            folder.chmod(0o777)
            path = folder / "s.sock"
            server = socket.socket(socket.AF_UNIX)
            server.bind(str(path))
            path.chmod(0o777)
            server.listen(4)
            threading.Thread(target=lambda s=server: [s.accept() for _ in range(4)], daemon=True).start()
            servers.append(server)
            paths.append(str(path))
        code = f"""
        import socket
        for path in {paths!r}:
            try:
                socket.socket(socket.AF_UNIX).connect(path)
                print("CONNECTED", path)
            except OSError as e:
                print("refused", path, type(e).__name__)
        """
        assert "CONNECTED" in run(tmp_path / "plain", code, use_bwrap="never").stdout  # reachable without it
        out = run(tmp_path / "work", code)
    finally:
        for server in servers:
            server.close()
        for folder in folders:
            shutil.rmtree(folder)
    assert out.exit_code == 0, out.stderr
    assert "CONNECTED" not in out.stdout and out.stdout.count("refused") == len(paths)


@pytest.mark.skipif(not ROOT, reason="the switch of user happens when the engine runs as root")
def test_a_root_engine_runs_the_program_as_nobody_owning_only_its_directory(tmp_path):
    code = """
    import os
    print(os.getuid(), os.getgid(), os.getgroups(), os.stat(".").st_uid)
    """
    out = run(tmp_path / "work", code)
    assert out.stdout.split() == ["65534", "65534", "[]", "65534"], out.stderr


@pytest.mark.skipif(not ROOT, reason="staging of unreachable paths is for a root engine")
def test_an_interpreter_in_a_private_folder_still_runs(tmp_path):
    """The engine's own virtual environment under a folder the node's user cannot enter (like /root)."""
    private = Path(tempfile.mkdtemp(prefix="engine-venv-", dir="/tmp"))  # 0700, root's
    try:
        venv = private / "venv"
        subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        paths = [p for p in sys.path if p.endswith("site-packages")] + [str(Path(__file__).parents[2])]
        (site / "engine_test.pth").write_text("\n".join(paths) + "\n")
        work = tmp_path / "work"
        work.mkdir()
        # numpy comes from the site-packages the .pth file names: bound too, the project itself is not
        (work / "prog.py").write_text("import os, sys, numpy\nprint(os.getuid(), sys.prefix)\n"
                                      "import engine\n")
        driver = ("import sys; from pathlib import Path; from engine.config import shipped_sandbox; "
                  "from engine.sandbox.run import run_sandboxed; "
                  f"o = run_sandboxed([sys.executable, 'prog.py'], Path({str(work)!r}), "
                  "shipped_sandbox(timeout_s=30)); "
                  "print(o.stdout, o.stderr)")
        res = subprocess.run([str(venv / "bin" / "python"), "-c", driver], capture_output=True, text=True,
                             timeout=60)
    finally:
        shutil.rmtree(private)
    assert res.stdout.split()[:2] == ["65534", str(venv)], res.stdout + res.stderr
    assert "No module named 'engine'" in res.stdout


def test_missing_bubblewrap_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EngineError, match="bubblewrap.*apt-get install bubblewrap.*use_bwrap=never"):
        bwrap_path(shipped_sandbox(use_bwrap="always"))
    assert bwrap_path(shipped_sandbox(use_bwrap="never")) is None
