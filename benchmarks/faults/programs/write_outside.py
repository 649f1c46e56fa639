"""Hostile node: write a marker file outside its own directory, directly and through /proc/self/root."""
import json
import os

params = json.load(open("params.json"))
targets = params["targets"] + [os.path.join(os.path.dirname(os.getcwd()), params["name"])]
for path in targets:
    for attempt in (path, "/proc/1/root" + path, "/proc/self/cwd/.." + path):
        try:
            with open(attempt, "w") as f:
                f.write(params["token"])
            print("WROTE", attempt)
        except OSError as e:
            print(f"refused {attempt}: {e.strerror}")
