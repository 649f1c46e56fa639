"""Hostile node: a final_info.json the collector chokes on (deep nesting, invalid UTF-8, a huge file)."""
import json
import os

params = json.load(open("params.json"))
os.makedirs("run_0", exist_ok=True)
with open("run_0/final_info.json", "wb") as f:
    if params["mode"] == "deep":
        f.write(b"[" * 200_000 + b"]" * 200_000)
    elif params["mode"] == "utf8":
        f.write(b'{"toy": {"means": {"val_loss": 1.0}}, "note": "\xff\xfe\xc3\x28"}')
    else:
        f.write(b'{"toy": {"means": {"val_loss": 1.0}}, "pad": "')
        for _ in range(params["mb"]):
            f.write(b"p" * 2**20)
        f.write(b'"}')
print("written")
