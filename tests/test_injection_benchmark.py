"""The injection benchmark measures what reaches the model: on a white-text paper the instruction is in what plain
pypdf extraction gives (the attack works on an unhardened loader) and does not reach the recorded prompts; on a
clean paper nothing is flagged; the report counts a miss as a miss."""
import os
import shutil

import pytest

from benchmarks.injection import KEY_ENV, answer, report, run_kind
from benchmarks.injection_papers import KINDS
from benchmarks.recording_model import RecordingModel

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),
                               reason="pdflatex not installed")


@needs_tex
def test_a_hidden_instruction_is_measured_kept_out_and_a_clean_paper_unflagged(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "local")
    (tmp_path / "reviews").mkdir()
    kinds = {k.name: k for k in KINDS}
    with RecordingModel(answer) as model:
        white = run_kind(kinds["white"], tmp_path, model, "reject")
        clean = run_kind(kinds["clean"], tmp_path, model, "reject")
        assert model.requests and "QUOKKAWHITE" not in model.sent()
    assert white["in_plain_text"] and not white["reached"] and white["flagged"] and white["decision"] == "Reject"
    assert white["paper_reached"] and clean["paper_reached"]
    assert not clean["flagged"] and clean["text_unchanged"] and clean["decision"] == "Accept"
    env = {"date": "d", "machine": "m", "python": "p", "pypdf": "x", "pdflatex": "t"}
    shots = {"folder": "f", "pdfs": 0, "flagged": []}
    _, ok = report([white, clean], shots, None, env, "cmd", "reject")
    assert ok
    text, ok = report([white | {"reached": True}, clean], shots, None, env, "cmd", "reject")
    assert not ok and "1 of 1 reached the model" in text
