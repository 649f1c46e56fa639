"""Hostile node: unmount the hidden /tmp, remount / read-write, mount a fresh tmpfs, then write outside."""
import ctypes
import json

libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_REMOUNT, MS_BIND, MNT_DETACH = 1, 32, 4096, 2
params = json.load(open("params.json"))


def call(name, *args):
    ok = getattr(libc, name)(*args) == 0
    why = "" if ok else f" errno {ctypes.get_errno()}"
    print(("ALLOWED " if ok else "refused ") + name + " " + repr(args[:2]) + why)
    return ok


call("umount2", b"/tmp", MNT_DETACH)
call("mount", None, b"/", None, MS_REMOUNT | MS_BIND, None)
call("mount", None, b"/", None, MS_REMOUNT, None)
call("mount", b"none", b"/mnt", b"tmpfs", 0, None)
for path in params["targets"]:
    try:
        with open(path, "w") as f:
            f.write(params["token"])
        print("WROTE", path)
    except OSError as e:
        print(f"refused {path}: {e.strerror}")
