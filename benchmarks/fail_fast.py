"""How fast a misconfigured model ends a run: `python -m engine.launch` against a loopback server that rejects the
key (401), does not know the model (404) or is not there at all, timed from the command's start and from the
server's answer to the process's exit. The target: under 5 s from start to the clear error.

    python -m benchmarks.fail_fast --repeat 5 --out fail_fast.json
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.llm.loopback import FakeLLMServer

TARGET_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(kind: str) -> dict:
    """One launch that must fail: 401 (wrong key), 404 (unknown model) or no server."""
    with FakeLLMServer(api_key="the-right-key") as server, tempfile.TemporaryDirectory() as tmp:
        answered: list[float] = []
        if kind == "unknown model":
            server.script = [{"status": 404, "message": "The model `nope` does not exist"}]
        base_url = server.base_url if kind != "no server" else f"http://127.0.0.1:{_free_port()}/v1"
        original = server.httpd.RequestHandlerClass.do_POST

        def timed(handler):  # note when the server answered
            original(handler)
            answered.append(time.monotonic())
        server.httpd.RequestHandlerClass.do_POST = timed
        env = os.environ | {"OPENAI_API_KEY": "a-wrong-key", "RAY_USAGE_STATS_ENABLED": "0"}
        start = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "engine.launch", "+topic=grokking", f"model.base_url={base_url}",
                              "model.name=nope", "tracking=none", f"hydra.run.dir={tmp}/run"],
                             capture_output=True, text=True, env=env, timeout=120)
        end = time.monotonic()
    error = next((line for line in res.stderr.splitlines() if "[ERROR]" in line), "")
    return {"kind": kind, "exit_code": res.returncode, "total_s": round(end - start, 2),
            "after_answer_s": round(end - answered[0], 2) if answered else None, "error": error.split(" - ", 1)[-1]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    runs = [one(kind) for _ in range(args.repeat) for kind in ("wrong key", "unknown model", "no server")]
    rows = []
    for kind in ("wrong key", "unknown model", "no server"):
        mine = [r for r in runs if r["kind"] == kind]
        after = [r["after_answer_s"] for r in mine if r["after_answer_s"] is not None]
        rows.append({"kind": kind, "runs": len(mine), "exit_codes": sorted({r["exit_code"] for r in mine}),
                     "total_s_median": statistics.median(r["total_s"] for r in mine),
                     "total_s_max": max(r["total_s"] for r in mine),
                     "after_answer_s_median": statistics.median(after) if after else None,
                     "under_target": all(r["total_s"] < TARGET_S for r in mine), "error": mine[0]["error"]})
    print(f"{'failure':<15} {'runs':>4} {'exit':>6} {'median s':>9} {'max s':>7} {'after answer s':>15}  error")
    for r in rows:
        after = "-" if r["after_answer_s_median"] is None else f"{r['after_answer_s_median']:.2f}"
        print(f"{r['kind']:<15} {r['runs']:>4} {','.join(map(str, r['exit_codes'])):>6} "
              f"{r['total_s_median']:>9.2f} {r['total_s_max']:>7.2f} {after:>15}  {r['error'][:90]}")
    result = {"target_s": TARGET_S, "rows": rows, "runs": runs}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
