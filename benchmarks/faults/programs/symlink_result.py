"""Hostile node: make its result a symlink to a host file (or its run folder one to a host folder)."""
import json
import os

params = json.load(open("params.json"))
if params["mode"] == "file":
    os.makedirs("run_0", exist_ok=True)
    os.symlink(params["target"], "run_0/final_info.json")
    os.symlink(params["target"], "run_0/notes.txt")
    os.symlink(params["target"], "leak.png")
else:
    os.symlink(params["target_dir"], "run_0")
print("linked")
