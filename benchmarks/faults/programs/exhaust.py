"""Hostile node: fork bomb, endless loop, endless stdout, or many files each under the size cap."""
import json
import os

params = json.load(open("params.json"))
mode, token = params["mode"], params["token"]
if mode == "fork":
    for _ in range(params["count"]):
        try:
            if os.fork() == 0:
                os.setsid()  # try to leave the process group the sandbox kills
                import time
                time.sleep(120)
                os._exit(0)
        except OSError:
            pass
    print("SURVIVED", token)
elif mode == "loop":
    while True:
        pass
elif mode == "stdout":
    line = ("y" * 1023 + "\n") * 1024
    for _ in range(params["mb"]):
        print(line, end="")
    print("SURVIVED", token)
elif mode == "disk":
    chunk, written = b"z" * 2**24, 0
    for i in range(params["mb"] // 64):
        with open(f"fill_{i}.bin", "wb") as f:
            for _ in range(4):
                f.write(chunk)
        written += 64
    print("SURVIVED", token, written, "MB")
