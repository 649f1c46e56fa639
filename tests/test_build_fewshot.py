import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "build_fewshot.py"
spec = importlib.util.spec_from_file_location("build_fewshot", SCRIPT)
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def note(inv, **content):
    return {"invitation": f"ICLR.cc/2022/Conference/Paper1/-/{inv}", "content": content}


def test_converts_the_median_iclr_review():
    notes = [note("Official_Review", recommendation="3: reject", confidence="4: confident", correctness="2: flawed",
                  summary_of_the_paper="weak"),
             note("Official_Review", recommendation="6: marginally above the acceptance threshold",
                  confidence="3: fairly confident", correctness="3: minor issues",
                  technical_novelty_and_significance="2: marginal", empirical_novelty_and_significance="3: new",
                  summary_of_the_paper="A method.", main_review="Good and bad.", summary_of_the_review="Borderline.",
                  flag_for_ethics_review=["NO."]),
             note("Official_Review", recommendation="8: accept", summary_of_the_paper="strong"),
             note("Decision", decision="Accept (Poster)")]
    review, decision = build.pick_review(notes)
    out = build.to_review(review, decision)
    assert out["Summary"] == "A method." and out["Overall"] == 6 and out["Confidence"] == 3
    assert (out["Soundness"], out["Originality"], out["Significance"]) == (3, 2, 3)
    assert out["Decision"] == "Accept" and out["Strengths"] == ["Good and bad."]
    assert out["Ethical Concerns"] is False
    assert build.ethics_flagged(["Yes, Privacy, security and safety"]) is True
