"""The engine-scale benchmark end to end on a few nodes: the real launcher, the samples, the records."""
import json

import pytest

from benchmarks.engine_scale import main


@pytest.mark.slow
def test_a_small_run_reports_every_decile_from_the_records_and_the_samples(tmp_path):
    out = tmp_path / "scale.json"
    main(["--nodes", "10", "--slots", "2", "--cluster", "threads", "--out", str(out), "--sample-s", "0.2",
          "--dir-every", "1", "--work-dir", str(tmp_path)])
    [run] = json.loads(out.read_text())["runs"]
    assert run["cluster"] == "threads" and run["nodes"] == 10
    assert [row["nodes"] for row in run["deciles"]] == [1] * 10
    whole = run["whole_run"]
    # the records' overhead is the driver's own measure, read from timestamps: the two medians agree closely
    assert whole["overhead_ms_median"] == pytest.approx(run["summary_driver_overhead_ms_median"], rel=0.5)
    assert 0 < whole["slot_use_programs"] < whole["slot_use_submitted"] <= 1
    assert whole["slot_use_submitted"] == pytest.approx(run["summary_slot_utilization"], abs=0.15)
    # a result rewrites the status files: it writes more than it leaves in the run directory
    assert whole["written_bytes_per_node"] > whole["dir_growth_bytes_per_node"] > 0
    assert run["samples"] and run["first_program_after_launch_s"] > 0
    assert not list(tmp_path.glob("engine-scale-*"))  # the run directories are removed without --keep
