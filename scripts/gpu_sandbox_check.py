"""Check, on a machine with an NVIDIA GPU, that a GPU node's sandbox works and keeps it to its share.

    .venv/bin/python scripts/gpu_sandbox_check.py [--gpu 0] [--fraction 0.25]

Each check runs a small program the way a Ray runner would (engine.nodes.node_exec.execute_node with the files and
environment of engine.sandbox.gpu_share for GPU `--gpu` at `--fraction`), in the real sandbox, and prints a PASS/FAIL
table; the exit status is 1 when any check fails. Without a GPU (or without a CUDA build of torch) it prints why
and exits 0: there is nothing to check.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import shipped_sandbox
from engine.nodes.node_exec import NodeJob, execute_node  # noqa: E402
from engine.sandbox.gpu_share import share_files_and_env  # noqa: E402

PROBE = """
import glob, json, os, resource
import torch
report = {"cuda": torch.cuda.is_available(), "count": torch.cuda.device_count(),
          "devices": sorted(glob.glob("/dev/nvidia[0-9]*")), "uid": os.getuid(),
          "as_limit": resource.getrlimit(resource.RLIMIT_AS)[0]}
if report["cuda"]:
    total = torch.cuda.get_device_properties(0).total_memory
    report["total_gb"] = total / 2**30
    small = torch.empty(int(total * FRACTION * 0.5), dtype=torch.uint8, device="cuda")  # half its share
    report["within_share"] = True
    del small
    torch.cuda.empty_cache()
    try:
        big = torch.empty(int(total * min(FRACTION * 2, 0.95)), dtype=torch.uint8, device="cuda")  # twice it
        report["beyond_share"] = "allocated"
    except torch.cuda.OutOfMemoryError:
        report["beyond_share"] = "refused"
print("REPORT " + json.dumps(report))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", default="0", help="the GPU index the runner would be given")
    ap.add_argument("--fraction", type=float, default=0.25, help="the node's share of it")
    args = ap.parse_args()
    host_devices = sorted(glob.glob("/dev/nvidia[0-9]*"))
    if not host_devices:
        print("SKIP: this machine has no NVIDIA GPU (/dev/nvidia0 is missing); nothing to check")
        return 0
    try:
        import torch
    except ImportError:
        print("SKIP: torch is not installed in this environment")
        return 0
    if not torch.cuda.is_available():
        print(f"SKIP: torch {torch.__version__} sees no GPU here (a CPU-only build?); nothing to check")
        return 0

    files, env = share_files_and_env([args.gpu], args.fraction)
    job = NodeJob("gpu-check", PROBE.replace("FRACTION", repr(args.fraction)), {},
                  shipped_sandbox(use_bwrap="always", timeout_s=300, memory_gb=16), None, None, None)
    outcome = execute_node(job, files, env)
    lines = [line for line in outcome.result.stdout_tail.splitlines() if line.startswith("REPORT ")]
    report = json.loads(lines[-1][len("REPORT "):]) if lines else {}
    if not report:
        print("FAIL: the probe did not report; its stderr:\n" + outcome.result.stderr_tail[-3000:])
        return 1

    checks = [
        ("torch.cuda.is_available() inside the sandbox", report.get("cuda") is True, report.get("cuda")),
        ("exactly one GPU visible to CUDA", report.get("count") == 1, report.get("count")),
        ("only one /dev/nvidiaN inside", len(report.get("devices", [])) == 1,
         f"{report.get('devices')} (host has {len(host_devices)})"),
        ("no address-space cap on a GPU node", report.get("as_limit") == -1, report.get("as_limit")),
        (f"allocating half of a {args.fraction:g} share works", report.get("within_share") is True,
         report.get("within_share")),
        (f"allocating twice a {args.fraction:g} share fails", report.get("beyond_share") == "refused",
         report.get("beyond_share")),
        ("runs unprivileged when the engine is root", report.get("uid") != 0, f"uid {report.get('uid')}"),
    ]
    width = max(len(name) for name, _, _ in checks)
    print(f"{'check'.ljust(width)}  result  seen")
    for name, ok, seen in checks:
        print(f"{name.ljust(width)}  {'PASS' if ok else 'FAIL':6}  {seen}")
    failed = sum(not ok for _, ok, _ in checks)
    print(f"\n{len(checks) - failed} passed, {failed} failed")
    if failed:
        print("stderr of the probe:\n" + outcome.result.stderr_tail[-3000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
