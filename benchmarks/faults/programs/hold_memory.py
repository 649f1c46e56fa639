"""Hostile node: hold memory the resident-set watchdog does not see (memfds, /dev/shm files), or plainly too much.

Each memfd or file stays under the per-file size cap; together they pass the memory limit.
"""
import json
import os
import time

params = json.load(open("params.json"))
chunk = b"x" * 2**24
held = []
for i in range(params["bytes"] // len(chunk)):
    if params["mode"] == "rss":
        held.append(bytearray(chunk))
        continue
    if i % 8 == 0:  # a new 128 MB memfd or file
        if params["mode"] == "memfd":
            fd = os.memfd_create(f"hold{i}")
        else:
            fd = os.open(f"/dev/shm/faults-{os.getpid()}-{i}", os.O_CREAT | os.O_RDWR)
        held.append(fd)
    os.write(fd, chunk)
time.sleep(params["hold_s"])
print("HELD", params["mode"], params["bytes"], params["token"])
