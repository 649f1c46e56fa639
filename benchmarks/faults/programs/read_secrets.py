"""Hostile node: print every planted secret it can reach (home directory, /etc/shadow, other runs)."""
import glob
import json
import os

params = json.load(open("params.json"))
found = []
for pattern in params["paths"] + ["/root/.*", "/root/*/*", "/home/*/.*", "/etc/shadow"]:
    for path in glob.glob(pattern):
        try:
            with open(path, errors="replace") as f:
                found.append(f"{path}: {f.read(4096)}")
        except OSError as e:
            print(f"refused {path}: {e.strerror}")
print("\n".join(found))
os.makedirs("run_0", exist_ok=True)
json.dump({"leak": {"means": {"found": len(found)}}, "text": found[:20]}, open("run_0/final_info.json", "w"))
