"""scripts/build_fewshot.py: the ICLR 2022 review form mapped onto the NeurIPS-form fields, the benchmark's papers
refused, and what it writes read back by the reviewer's few-shot loader."""
import importlib.util
import json
from pathlib import Path

from benchmarks.review_metrics import load_ratings
from engine.review.reviewer import FIELDS, load_fewshot, validate

SCRIPT = Path(__file__).parents[1] / "scripts" / "build_fewshot.py"
spec = importlib.util.spec_from_file_location("build_fewshot", SCRIPT)
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

MAIN_REVIEW = """The paper studies curriculum learning for sparse rewards.

**Strengths**
- The idea of ordering goals by reachability is simple.
- Experiments cover three
  continuous-control suites.

**Weaknesses**
1. The baselines are not tuned.
2. No error bars in Table 2.

Questions: How sensitive is the method to the threshold?

Minor comments: typo in Eq. 3."""


def note(inv, **content):
    return {"invitation": f"ICLR.cc/2022/Conference/Paper1/-/{inv}", "content": content}


def iclr_review(recommendation, **extra):
    """A hand-written ICLR 2022 official review, with the form's exact field names and option texts."""
    return {"summary_of_the_paper": "A curriculum over goals.", "main_review": MAIN_REVIEW,
            "summary_of_the_review": "Interesting but under-evaluated.",
            "correctness": "3: Some of the paper\u2019s claims have minor issues.",
            "technical_novelty_and_significance": "2: The contributions are only marginally significant or novel.",
            "empirical_novelty_and_significance": "4: The contributions are significant, and do not exist in prior "
                                                  "works.",
            "flag_for_ethics_review": ["NO."], "recommendation": recommendation,
            "confidence": "4: You are confident in your assessment, but not absolutely certain."} | extra


def test_iclr_2022_fields_map_by_meaning_not_all_onto_correctness():
    out = build.to_review(iclr_review("6: marginally above the acceptance threshold"), "Accept (Poster)")
    assert validate(out) == out and list(out) == list(FIELDS)
    assert out["Summary"] == "A curriculum over goals."
    assert out["Strengths"] == ["The idea of ordering goals by reachability is simple.",
                                "Experiments cover three continuous-control suites."]
    assert out["Weaknesses"] == ["The baselines are not tuned.", "No error bars in Table 2.", "typo in Eq. 3."]
    assert out["Questions"] == ["How sensitive is the method to the threshold?"] and out["Limitations"] == []
    assert (out["Soundness"], out["Quality"]) == (3, 3)                 # correctness
    assert out["Originality"] == 2                                       # technical novelty
    assert (out["Significance"], out["Contribution"]) == (3, 3)          # mean of technical 2 and empirical 4
    assert (out["Clarity"], out["Presentation"]) == (3, 3)               # no source: mean of 3, 2, 4 (imputed)
    assert out["Overall"] == 5 and out["Confidence"] == 4 and out["Decision"] == "Accept"
    assert out["Ethical Concerns"] is False
    assert "Interesting but under-evaluated." not in json.dumps(out)     # no NeurIPS field for it


def test_recommendations_follow_their_labels_and_gaps_are_handled():
    labels = {"1: strong reject": 2, "3: reject, not good enough": 3,
              "5: marginally below the acceptance threshold": 4, "6: marginally above the acceptance threshold": 5,
              "8: accept, good paper": 7, "10: strong accept, should be highlighted at the conference": 8}
    for rec, overall in labels.items():
        assert build.to_review(iclr_review(rec), None)["Overall"] == overall
    out = build.to_review(iclr_review("3: reject, not good enough", main_review="Too thin to judge.",
                                      empirical_novelty_and_significance="Not applicable",
                                      flag_for_ethics_review=["Yes, Privacy, security and safety"]), None)
    assert out["Significance"] == 2 and out["Clarity"] == 2           # the empirical "Not applicable" left out
    assert out["Strengths"] == [] and out["Weaknesses"] == ["Too thin to judge."]
    assert out["Decision"] == "Reject" and out["Ethical Concerns"] is True


def test_picks_the_median_review_and_reads_the_decision_and_title():
    notes = [{"id": "abc123XYZ", "invitation": "ICLR.cc/2022/Conference/-/Blind_Submission",
              "content": {"title": "Goal Curricula"}},
             note("Official_Review", **iclr_review("3: reject, not good enough")),
             note("Official_Review", **iclr_review("5: marginally below the acceptance threshold",
                                                   main_review="no headings here")),
             note("Official_Review", **iclr_review("6: marginally above the acceptance threshold")),
             note("Official_Review", **iclr_review("8: accept, good paper")),
             note("Decision", decision="Accept (Poster)")]
    review, decision = build.pick_review(notes)
    # median 5.5: 5 and 6 tie on distance; 6 agrees with the decision
    assert review["recommendation"].startswith("6") and decision == "Accept (Poster)"
    assert build.paper_title(notes, "abc123XYZ") == "Goal Curricula"


def test_written_example_is_read_back_by_the_reviewer(tmp_path):
    record = build.example("abc123XYZ", "Goal Curricula", iclr_review("8: accept, good paper"), "Accept (Oral)")
    (tmp_path / "abc123XYZ.json").write_text(json.dumps(record))
    (tmp_path / "abc123XYZ.txt").write_text("Goal Curricula\nAnonymous authors\n" + "text " * 50)
    [ex] = load_fewshot(tmp_path)
    assert (ex.name, ex.paper_id, ex.title) == ("abc123XYZ", "abc123XYZ", "Goal Curricula")
    assert ex.review == record["review"] and record["imputed"] == ["Clarity", "Presentation"]
    assert record["iclr"]["summary_of_the_review"] == "Interesting but under-evaluated."


def test_benchmark_papers_are_refused_before_any_download(tmp_path, capsys):
    benchmark_id = next(iter(load_ratings()))
    rc = build.main(["--ids", "fresh1234", benchmark_id, "--out", str(tmp_path / "out"),
                     "--openreview-url", "http://127.0.0.1:9", "--openreview-api", "http://127.0.0.1:9"])
    assert rc == 2 and benchmark_id in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert len(build.benchmark_ids(build.REPO / "benchmarks" / "data" / "iclr2022_ratings.tsv")) == 500
