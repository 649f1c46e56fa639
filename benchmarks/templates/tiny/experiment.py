# The engine-scale benchmark's node program: a few milliseconds of arithmetic and a 0.05 s sleep, then the v1
# metrics file. Small on purpose: what the benchmark measures is the engine around it, not the program.
import argparse
import json
import os
import time

SLEEP_S = 0.05
LEARNING_RATE = 0.01
WIDTH = 64
DEPTH = 4
DROPOUT = 0.1
WARMUP = 100

parser = argparse.ArgumentParser()
parser.add_argument("--out_dir", type=str, required=True)
args = parser.parse_args()

time.sleep(SLEEP_S)
# a deterministic "validation loss" with its minimum inside the tunables' ranges
loss = (abs(LEARNING_RATE - 0.003) * 100 + abs(WIDTH - 256) / 256 + abs(DEPTH - 6) / 6
        + abs(DROPOUT - 0.2) + abs(WARMUP - 400) / 400)
os.makedirs(args.out_dir, exist_ok=True)
with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
    json.dump({"tiny": {"means": {"val_loss": loss}, "stderrs": {"val_loss": 0.0}}}, f)
print(f"val_loss {loss:.6f}")
