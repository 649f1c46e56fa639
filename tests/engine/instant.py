"""An executor that runs nothing: a program `VALUE = x` (with an optional `SEED = s`) scores x + s/100 at once,
and a negative VALUE fails. For driver and stage-runner tests without processes."""
import re

from engine.nodes.node_exec import NodeJob, NodeOutcome
from search.node import ExecResult


class InstantExecutor:
    slots = 2

    def __init__(self):
        self.done, self.submitted = [], []

    def submit(self, job: NodeJob) -> None:
        self.submitted.append(job.code)
        value = float(re.search(r"VALUE = (\S+)", job.code).group(1))
        seed = re.search(r"SEED = (\d+)", job.code)
        score = value + (int(seed.group(1)) if seed else 0) / 100
        result = ExecResult(exit_code=1, exc_type="ValueError", exc_message="negative") if value < 0 else \
            ExecResult(exit_code=0, final_info={"g": {"means": {"m": score}}})
        self.done.append(NodeOutcome(job.node_id, result))

    def wait_any(self, timeout_s: float) -> list[NodeOutcome]:
        out, self.done = self.done, []
        return out

    def in_flight(self) -> int:
        return len(self.done)

    def shutdown(self) -> None:
        pass
