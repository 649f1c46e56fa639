"""Hostile node: attach to, read and signal a process that is not its own (the host's sentinel), and its child."""
import ctypes
import json
import os
import signal
import time

libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
params = json.load(open("params.json"))
pid = params["pid"]
for what in ("environ", "cmdline"):
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            print(what, f.read().replace(b"\0", b" ").decode(errors="replace"))
    except OSError as e:
        print(f"refused /proc/{pid}/{what}: {e.strerror}")
ok = libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0
print("ALLOWED ptrace host pid" if ok else f"refused ptrace host pid errno {ctypes.get_errno()}")
try:
    os.kill(pid, signal.SIGSTOP)
    print("ALLOWED kill host pid")
except OSError as e:
    print(f"refused kill host pid: {e.strerror}")
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
ok = libc.ptrace(PTRACE_ATTACH, child, None, None) == 0
print("ALLOWED ptrace own child" if ok else f"refused ptrace own child errno {ctypes.get_errno()}")
os.kill(child, signal.SIGKILL)
