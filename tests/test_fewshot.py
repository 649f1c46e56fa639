"""Few-shot examples: the v1 folder layout read unchanged (text or PDF next to a JSON review), and the ICLR
benchmark's rules: exactly the shots asked for (or --allow-fewer-shots), none of them an evaluated paper."""
import json

import openai
import pytest

from benchmarks.iclr_review import main as bench_main
from engine.review import perform_review
from engine.review.reviewer import ReviewError, load_fewshot
from tests.engine.test_review import needs_tex, pdflatex, review_json
from tests.fake_llm_server import FakeLLMServer
from tests.test_iclr_benchmark import ratings_subset


def neurips_review(summary, overall=4):
    return {"Summary": summary, "Strengths": ["s"], "Weaknesses": ["w"], "Originality": 2, "Quality": 2,
            "Clarity": 3, "Significance": 2, "Questions": ["q"], "Limitations": ["l"], "Ethical Concerns": False,
            "Soundness": 2, "Presentation": 3, "Contribution": 2, "Overall": overall, "Confidence": 4,
            "Decision": "Reject"}


def v1_folder(tmp_path, with_pdf=True):
    """A folder as the original project ships it: the review as a JSON string under "review", the paper as
    text and/or PDF, and a JSON file that is not an example (no paper beside it)."""
    folder = tmp_path / "fewshot"
    folder.mkdir()
    (folder / "alpha.txt").write_text("Alpha: Counting Sheep with Transformers\n" + "We count sheep. " * 30)
    (folder / "alpha.json").write_text(json.dumps({"review": json.dumps(neurips_review("ALPHA-REVIEW"), indent=4)},
                                                  indent=4))
    (folder / "seed_idea.json").write_text(json.dumps({"Name": "not an example"}))
    (folder / "orphan.txt").write_text("a paper without a review")
    if with_pdf:
        pdflatex(folder, "\\documentclass{article}\\begin{document}Beta: Heaps of Heaps. "
                 + "The beta paper sorts with heaps. " * 20 + "\\end{document}", name="beta")
        for junk in ("aux", "log", "tex"):
            (folder / f"beta.{junk}").unlink()
        (folder / "beta.json").write_text(json.dumps(neurips_review("BETA-REVIEW", overall=6)))
    return folder


@needs_tex
def test_v1_layout_is_read_unchanged_with_text_or_pdf_papers(tmp_path):
    folder = v1_folder(tmp_path)
    examples = load_fewshot(folder)
    assert [e.name for e in examples] == ["alpha", "beta"]
    assert examples[0].review["Summary"] == "ALPHA-REVIEW" and examples[0].title.startswith("Alpha: Counting")
    assert "The beta paper sorts with heaps." in examples[1].paper and examples[1].review["Overall"] == 6
    with FakeLLMServer() as server:
        server.script = [review_json(5)]
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        perform_review("the paper under review " * 20, "fake-model", client, num_reflections=1, num_fs_examples=2,
                       num_reviews_ensemble=1, fewshot_dir=folder)
        prompt = json.dumps(server.requests[0][1]["messages"])
    for seen in ("We count sheep.", "ALPHA-REVIEW", "The beta paper sorts with heaps.", "BETA-REVIEW"):
        assert seen in prompt
    assert prompt.index("ALPHA-REVIEW") < prompt.index("BETA-REVIEW") < prompt.index("the paper under review")


def test_an_unusable_review_file_is_named(tmp_path):
    folder = v1_folder(tmp_path, with_pdf=False)
    (folder / "alpha.json").write_text(json.dumps({"review": json.dumps({"Summary": "only this"})}))
    with pytest.raises(ReviewError, match=r"alpha\.json: not a usable few-shot review"):
        load_fewshot(folder)


def run_bench(tmp_path, *args):
    ratings, picked = ratings_subset(tmp_path, n_each=1)
    return bench_main(["--model", "fake-model", "--base-url", "http://127.0.0.1:9/v1", "--ratings", str(ratings),
                       "--num_reviews", "2", "--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"),
                       "--openreview-url", "http://127.0.0.1:9", *args]), picked


def test_the_benchmark_refuses_to_run_with_fewer_shots_than_asked(tmp_path, capsys):
    rc, _ = run_bench(tmp_path, "--num_fs_examples", "1", "--fewshot-dir", str(tmp_path / "empty"))
    err = capsys.readouterr().err
    assert rc == 2 and "holds 0 few-shot example(s)" in err and "--allow-fewer-shots" in err
    folder = v1_folder(tmp_path, with_pdf=False)
    rc, _ = run_bench(tmp_path, "--num_fs_examples", "2", "--fewshot-dir", str(folder))
    assert rc == 2 and "--num_fs_examples 2 asked for, but" in capsys.readouterr().err
    rc, _ = run_bench(tmp_path)  # the defaults: one shot, from the folder that ships empty
    assert rc == 2 and "--fewshot-dir" in capsys.readouterr().err


def test_a_fewshot_example_that_is_an_evaluated_paper_is_refused_by_id(tmp_path, capsys):
    folder = v1_folder(tmp_path, with_pdf=False)
    ratings, picked = ratings_subset(tmp_path, n_each=1)
    pid = picked[1]["paper_id"]
    (folder / "alpha.txt").rename(folder / f"{pid}.txt")  # an OpenReview id as the file name
    (folder / "alpha.json").rename(folder / f"{pid}.json")
    rc, _ = run_bench(tmp_path, "--num_fs_examples", "1", "--fewshot-dir", str(folder))
    assert rc == 2 and f"is paper {pid}, one of the papers being evaluated" in capsys.readouterr().err
    (folder / f"{pid}.txt").rename(folder / "renamed.txt")  # the id only inside the JSON
    (folder / "renamed.json").write_text(json.dumps({"paper_id": pid, "review": neurips_review("x")}))
    (folder / f"{pid}.json").unlink()
    rc, _ = run_bench(tmp_path, "--num_fs_examples", "1", "--fewshot-dir", str(folder))
    assert rc == 2 and f"is paper {pid}" in capsys.readouterr().err


@needs_tex
def test_a_fewshot_example_that_is_an_evaluated_paper_is_refused_by_title(tmp_path, capsys):
    ratings, picked = ratings_subset(tmp_path, n_each=1)
    papers = tmp_path / "papers"
    papers.mkdir()
    for i, r in enumerate(picked):
        title = "Sparse Goal Curricula for Legged Robots" if i == 1 else "Something Else Entirely Here"
        pdf = pdflatex(papers, f"\\documentclass{{article}}\\title{{{title}}}\\author{{Anonymous}}\\begin{{document}}"
                       f"\\maketitle {'Body text of the paper. ' * 30}\\end{{document}}", name=r["paper_id"])
        assert pdf.is_file()
    folder = tmp_path / "fewshot"
    folder.mkdir()
    (folder / "mine.txt").write_text("SPARSE GOAL CURRICULA FOR\nLEGGED ROBOTS\n" + "words " * 50)
    (folder / "mine.json").write_text(json.dumps({"review": neurips_review("x"),
                                                  "title": "Sparse goal curricula for legged robots"}))
    rc, _ = run_bench(tmp_path, "--num_fs_examples", "1", "--fewshot-dir", str(folder), "--papers-dir", str(papers))
    err = capsys.readouterr().err
    assert rc == 2 and f"has the title of paper {picked[1]['paper_id']}" in err


def test_allow_fewer_shots_goes_on_and_the_report_says_how_many(tmp_path):
    from benchmarks.iclr_fewshot import choose_shots
    from benchmarks.iclr_report import papers_section

    folder = v1_folder(tmp_path, with_pdf=False)
    shots = choose_shots(folder, 3, allow_fewer=True)
    assert [e.name for e in shots.examples] == ["alpha"]
    counts = {"evaluated": 2, "reviewed": 2, "failed": 0, "skipped": 0, "not_attempted": 0}
    text = "\n".join(papers_section({"papers": counts, "failed": [], "skipped": [], "fewshot": shots.summary()}))
    assert f"Few-shot examples: 1 used of 3 asked (alpha; from {folder}) with --allow-fewer-shots." in text
    zero = choose_shots(folder, 0, allow_fewer=False).summary()
    assert "none (zero-shot" in "\n".join(papers_section({"papers": counts, "failed": [], "skipped": [],
                                                          "fewshot": zero}))
