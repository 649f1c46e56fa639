# The node program of the v2 comparison (benchmarks/v2_compare.py): sleeps SLEEP_S seconds (a stand-in for
# training), then writes its results both ways: run_0/final_info.json (this engine's v1 format) and
# working/experiment_data.npy (what AI-Scientist-v2's tree search looks for before it parses metrics). The loopback
# model hands out this same program (with other TRIAL values) to both systems. Its last line reports when it ran.
import time

START = time.time()

import argparse  # noqa: E402 - START is taken before the imports
import json  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402

SLEEP_S = 8.0
TRIAL = 0
SEED = 0

parser = argparse.ArgumentParser(allow_abbrev=False)
parser.add_argument("--out_dir", type=str, default="run_0")
args, _ = parser.parse_known_args()

time.sleep(SLEEP_S)
val_loss = 1.0 / (1 + TRIAL) + 0.001 * SEED
os.makedirs(args.out_dir, exist_ok=True)
with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
    json.dump({"sim": {"means": {"val_loss": val_loss}, "stderrs": {"val_loss": 0.0}}}, f)
working = os.path.join(os.getcwd(), "working")
os.makedirs(working, exist_ok=True)
np.save(os.path.join(working, "experiment_data.npy"),
        {"sim": {"metrics": {"train": [val_loss], "val": [val_loss]}, "losses": {"train": [val_loss],
                                                                                   "val": [val_loss]}}})
print(f"validation loss: {val_loss:.4f}")
print("BENCH_SPAN " + json.dumps({"start": START, "end": time.time(), "pid": os.getpid()}))
