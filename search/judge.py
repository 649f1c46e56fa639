"""Decide whether an executed node is buggy and what its primary metric is."""
from __future__ import annotations

import math

from search.metric import MetricSpec
from search.node import ExecResult, Node


def judge(node: Node, result: ExecResult, spec: MetricSpec) -> None:
    """Fill node.exec, node.is_buggy, node.bug_reason and node.metric from the execution."""
    node.exec = result
    node.metric, node.is_buggy, node.bug_reason = None, True, ""
    if result.killed_reason is not None:
        node.bug_reason = f"{result.exc_type}: {result.exc_message}"
    elif result.exit_code != 0:
        node.bug_reason = f"{result.exc_type or 'Error'}: {result.exc_message or f'exit status {result.exit_code}'}"
    elif result.final_info is None:
        node.bug_reason = result.exc_message or "the program wrote no run_0/final_info.json"
    else:
        try:
            value = spec.extract(result.final_info)
        except (KeyError, ValueError) as e:
            node.bug_reason = f"MetricMissing: {e.args[0]}"
            return
        if not math.isfinite(value):
            node.bug_reason = f"MetricNotFinite: {spec.name} is {value}"
            return
        node.metric, node.is_buggy = value, False
