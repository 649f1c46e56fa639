"""Collecting a node's results trusts nothing the program left: links are refused, malformed results make the
node buggy with a reason, and nothing raised while collecting one node leaves execute_node."""
import json
import os
import shutil
import sys

import pytest

from engine.config import shipped_sandbox
from engine.nodes import node_exec
from engine.nodes.node_exec import NodeJob, UnsafeResult, execute_node, read_final_info
from search.judge import judge
from search.metric import MetricSpec
from search.node import Node

MODE = "always" if shutil.which("bwrap") else "never"
GOOD = 'import json, os\nos.makedirs("run_0", exist_ok=True)\njson.dump({"t": {"means": {"score": 1.0}}}, ' \
       'open("run_0/final_info.json", "w"))\n'
TEMPLATE_PLOT = b'open("template_plot.png", "wb").write(b"png from the template")\n'


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "host_secret.txt"
    path.write_text("HOST-SECRET-91c2")
    path.chmod(0o644)
    return path


def execute(code: str, plot: bytes | None = None) -> node_exec.NodeOutcome:
    support = {"plot.py": plot} if plot is not None else {}
    return execute_node(NodeJob("n1", code, support, shipped_sandbox(use_bwrap=MODE, timeout_s=30, memory_gb=4),
                                None, None, None))


def everything(outcome) -> str:
    r = outcome.result
    return " ".join([r.stdout_tail, r.stderr_tail, str(r.exc_message), json.dumps(r.final_info)] +
                    [b.decode("utf-8", "replace") for b in outcome.artifacts.values()])


def test_a_good_node_is_collected():
    outcome = execute(GOOD, TEMPLATE_PLOT)
    assert outcome.result.final_info == {"t": {"means": {"score": 1.0}}}
    assert outcome.artifacts["template_plot.png"] == b"png from the template"
    assert {"experiment.py", "stdout.txt", "run_0/final_info.json"} <= set(outcome.artifacts)


def test_a_symlinked_final_info_is_refused(secret):
    code = f'import os\nos.makedirs("run_0")\nos.symlink({str(secret)!r}, "run_0/final_info.json")\n'
    outcome = execute(code)
    assert outcome.result.final_info is None and outcome.result.exc_type == "UnsafeResult"
    assert "symbolic link" in outcome.result.exc_message
    assert "HOST-SECRET" not in everything(outcome)


def test_a_symlinked_run_folder_is_refused(secret):
    code = f'import os\nos.symlink({str(secret.parent)!r}, "run_0")\n'
    outcome = execute(code)
    assert outcome.result.final_info is None and outcome.result.exc_type == "UnsafeResult"
    assert "HOST-SECRET" not in everything(outcome)
    assert not any(k.startswith("run_0") for k in outcome.artifacts)


def test_logs_replaced_by_links_do_not_leak(secret):
    code = GOOD + (f'import os\nfor name in ("stdout.txt", "stderr.txt", "result.png"):\n'
                   f'    if os.path.exists(name): os.remove(name)\n    os.symlink({str(secret)!r}, name)\n')
    outcome = execute(code)
    assert outcome.result.final_info is not None
    assert "HOST-SECRET" not in everything(outcome)


@pytest.mark.parametrize("content, reason", [
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested"),
    (b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}", "nested"),
    (b'{"t": {"means": {"score": "\xff\xfe"}}}', "UTF-8"),
    (b"[1, 2, 3]", "JSON object"),
    (b"{not json", "not JSON"),
    (b'{"pad": "' + b"x" * (2 * 2**20) + b'"}', "limit"),
])
def test_a_malformed_final_info_makes_the_node_buggy(content, reason):
    code = f'import os\nos.makedirs("run_0")\nopen("run_0/final_info.json", "wb").write({content!r})\n'
    outcome = execute(code)
    assert outcome.result.final_info is None
    assert outcome.result.exc_type in ("InvalidFinalInfo", "UnsafeResult")
    assert reason in outcome.result.exc_message


def test_plot_py_is_restored_before_the_plot_run(secret):
    code = GOOD + ('import os\nos.remove("plot.py")\n'
                   'open("plot.py", "w").write("open(\'hacked.png\', \'wb\').write(b\'x\')")\n')
    outcome = execute(code, TEMPLATE_PLOT)
    assert "template_plot.png" in outcome.artifacts and "hacked.png" not in outcome.artifacts
    code = GOOD + f'import os\nos.remove("plot.py")\nos.symlink({str(secret)!r}, "plot.py")\n'
    outcome = execute(code, TEMPLATE_PLOT)
    assert "template_plot.png" in outcome.artifacts and secret.read_text() == "HOST-SECRET-91c2"


def test_nothing_raised_while_collecting_escapes(monkeypatch):
    def broken(*_args):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(node_exec, "collect", broken)
    outcome = execute(GOOD)
    assert outcome.result.exc_type == "CollectionError" and "RecursionError" in outcome.result.exc_message
    node = Node(code=GOOD)
    judge(node, outcome.result, MetricSpec("score", "maximize"))
    assert node.is_buggy and node.bug_reason.startswith("CollectionError")


def test_read_final_info_refuses_what_is_not_a_regular_file(tmp_path):
    (tmp_path / "run_0").mkdir()
    os.mkfifo(tmp_path / "run_0" / "final_info.json")  # would block a plain open()
    with pytest.raises(UnsafeResult, match="not a regular file"):
        read_final_info(tmp_path)
    os.remove(tmp_path / "run_0" / "final_info.json")
    os.symlink("/etc/hostname", tmp_path / "run_0" / "final_info.json")
    with pytest.raises(UnsafeResult, match="symbolic link"):
        read_final_info(tmp_path)
    shutil.rmtree(tmp_path / "run_0")
    assert read_final_info(tmp_path) is None
    os.symlink(sys.prefix, tmp_path / "run_0")
    with pytest.raises(UnsafeResult, match="run_0 is a symbolic link"):
        read_final_info(tmp_path)
