"""wandb tracking of the pipeline, offline: the ideas table and phase events reach the run's log."""
import wandb

from engine.config import shipped_tracking
from engine.tracking import WandbTracker


def test_tables_and_phase_events_are_logged_offline(tmp_path, monkeypatch):
    # wandb puts its service's address in os.environ (WANDB_SERVICE): undone after the test, so that runs launched
    # by later tests start their own service instead of sharing this process's
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    tracker = WandbTracker(shipped_tracking(mode="offline"), tmp_path, "t", {}, api_key_present=False)
    tracker.log_table("ideas", [{"name": "a", "novelty": {"decision": "novel"}, "score": 3},
                                {"name": "b", "score": None}])
    tracker.log_event("phase_end", {"phase": "ideas", "wall_time_s": 1.5, "cost_usd": None})
    tracker.finish({"status": "finished"})
    wandb.teardown()
    logged = b"".join(p.read_bytes() for p in (tmp_path / "wandb").glob("offline-run-*/*.wandb"))
    assert b"table/ideas" in logged and b"event/phase_end" in logged
    tables = list((tmp_path / "wandb").glob("offline-run-*/files/media/table/**/ideas_*.table.json"))
    assert tables and b'"novelty"' in tables[0].read_bytes() and b"decision" in tables[0].read_bytes()
