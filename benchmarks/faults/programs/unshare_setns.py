"""Hostile node: setns into pid 1's namespaces, new user and mount namespaces (to gain capabilities), then write
outside."""
import ctypes
import json
import os

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, MS_REMOUNT, MS_BIND = 0x20000, 0x10000000, 0x40000000, 32, 4096
params = json.load(open("params.json"))


def allowed(name, ok):
    print(("ALLOWED " if ok else "refused ") + name + ("" if ok else f" errno {ctypes.get_errno()}"))
    return ok


for ns in ("mnt", "net", "pid"):
    try:
        fd = os.open(f"/proc/1/ns/{ns}", os.O_RDONLY)
        allowed(f"setns({ns})", libc.setns(fd, 0) == 0)
        os.close(fd)
    except OSError as e:
        print(f"refused open /proc/1/ns/{ns}: {e.strerror}")
allowed("unshare(user|mount)", libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0)
allowed("unshare(net)", libc.unshare(CLONE_NEWNET) == 0)
allowed("remount / rw", libc.mount(None, b"/", None, MS_REMOUNT | MS_BIND, None) == 0)
for path in params["targets"]:
    try:
        with open(path, "w") as f:
            f.write(params["token"])
        print("WROTE", path)
    except OSError as e:
        print(f"refused {path}: {e.strerror}")
