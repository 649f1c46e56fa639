from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.rundir import RunDir, read_json, write_json
from search.node import ExecResult, Node


def finished_node(step=0, parent=None):
    n = Node(code=f"print({step})\n", plan="p", operator="draft" if parent is None else "improve",
             parent_id=parent, step=step, proposer="offline", metric=0.5, is_buggy=False,
             exec=ExecResult(exit_code=0, stdout_tail="out", exec_time_s=1.5, final_info={"g": {"means": {"m": 1}}},
                             plots=["a.png"]), finished_at=123.0)
    return n


def test_record_and_load_round_trip(tmp_path):
    run = RunDir(tmp_path)
    a = finished_node(0)
    b = finished_node(1, parent=a.id)
    b.is_buggy, b.metric, b.bug_reason = True, None, "ValueError: x"
    for n in (a, b):
        run.add_pending(n)
        run.record(n, {"experiment.py": n.code.encode(), "a.png": b"\x89PNG", "run_0/final_info.json": b"{}"})
    loaded = run.load_nodes()
    assert [n.id for n in loaded] == [a.id, b.id]
    assert loaded[0].exec == a.exec and loaded[0].metric == 0.5 and loaded[0].plan == "p"
    assert loaded[1].is_buggy and loaded[1].bug_reason == "ValueError: x" and loaded[1].parent_id == a.id
    assert run.load_pending() == []
    assert (run.node_dir(a) / "run_0" / "final_info.json").read_bytes() == b"{}"


def test_pending_nodes_survive_and_partial_folders_are_dropped(tmp_path):
    run = RunDir(tmp_path)
    n = Node(code="x = 1\n", step=4, plan="improve it")
    run.add_pending(n)
    (run.nodes_dir / "0004-abc.partial").mkdir(parents=True)
    [back] = RunDir(tmp_path).load_pending()
    assert (back.id, back.code, back.step, back.plan) == (n.id, n.code, 4, "improve it")
    assert not (run.nodes_dir / "0004-abc.partial").exists()


def test_artifact_names_cannot_escape_the_node_folder(tmp_path):
    run = RunDir(tmp_path / "run")
    n = finished_node(0)
    run.record(n, {"../../evil.txt": b"x", "ok.txt": b"y"})
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "run" / "evil.txt").exists()
    assert (run.node_dir(n) / "ok.txt").read_bytes() == b"y"


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    """write_atomic: a process killed halfway through a write (half the bytes, then the kill) leaves the old file."""
    target = tmp_path / "state.json"
    write_json(target, {"round": 1})
    real = Path.write_bytes

    def half_then_killed(self, data):
        real(self, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", half_then_killed)
    with pytest.raises(KeyboardInterrupt):
        write_json(target, {"round": 2, "notes": "x" * 1000})
    monkeypatch.undo()
    assert read_json(target) == {"round": 1}


def test_a_damaged_file_is_named_with_what_to_do(tmp_path):
    (tmp_path / "phases").mkdir()
    (tmp_path / "phases" / "writeup.json").write_text('{"status": "do')
    with pytest.raises(EngineError, match=r"phases/writeup.json: damaged, not readable JSON .*move it aside and "
                                          r"resume"):
        read_json(tmp_path / "phases" / "writeup.json")
    run = RunDir(tmp_path)
    a = finished_node(0)
    run.record(a, {})
    part = next((tmp_path / "journal").glob("*.parquet"))
    part.write_bytes(part.read_bytes()[:40])
    with pytest.raises(EngineError, match=rf"{part.name}: damaged journal part .*move it aside and resume"):
        run.load_nodes()
