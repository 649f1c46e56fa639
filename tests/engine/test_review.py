"""The reviewer against a loopback fake model (real SDK clients), load_paper on PDFs built with pdflatex."""
import json
import os
import shutil
import subprocess
import sys

import anthropic
import openai
import pytest

from engine.review import load_paper, perform_review
from engine.review.paper import PaperError, clean_pages
from engine.review.reviewer import FIELDS
from tests.conftest import REPO
from tests.fake_llm_server import FakeLLMServer

needs_tex = pytest.mark.skipif(shutil.which("pdflatex") is None and not os.environ.get("CI"),
                               reason="pdflatex not installed")


def review_json(overall, decision="Reject", summary="A paper.", **extra):
    r = {"Summary": summary, "Strengths": ["clear"], "Weaknesses": ["small"], "Originality": 2, "Quality": 3,
         "Clarity": 3, "Significance": 2, "Questions": ["why?"], "Limitations": ["few"], "Ethical Concerns": False,
         "Soundness": 3, "Presentation": 3, "Contribution": 2, "Overall": overall, "Confidence": 4,
         "Decision": decision} | extra
    return {"text": f"THOUGHT: fine.\n```json\n{json.dumps(r)}\n```"}


def done(overall, decision="Reject"):
    reply = review_json(overall, decision)
    return {"text": reply["text"] + "\nI am done"}


def pdflatex(tmp_path, body, name="paper"):
    (tmp_path / f"{name}.tex").write_text(body)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", f"{name}.tex"], cwd=tmp_path, capture_output=True,
                   timeout=120)
    pdf = tmp_path / f"{name}.pdf"
    assert pdf.is_file(), (tmp_path / f"{name}.log").read_text()[-2000:]
    return pdf


def test_ensemble_reflections_meta_review_and_a_malformed_member():
    script = [
        {"text": "no json at all"}, {"text": "still nothing"},           # member 1: dropped after one re-ask
        review_json(4), done(4),                                           # member 2: done after round 2
        review_json(7, "Accept"), review_json(6), done(6),                 # member 3: revised, then done
        review_json(9, "Reject", summary="Meta: reject, evidence thin."),  # the area chair
    ]
    with FakeLLMServer() as server:
        server.script = list(script)
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        review = perform_review("paper text " * 50, "fake-model", client, num_reflections=3, num_fs_examples=0,
                                num_reviews_ensemble=3, temperature=0.1, max_concurrency=1)
        assert len(server.requests) == len(script)
        assert server.requests[0][1]["temperature"] == 0.1
        assert "Round 2 of 3" in json.dumps(server.requests[3][1]["messages"])
    assert list(review)[:16] == list(FIELDS)
    assert review["Overall"] == 5  # round(mean(4, 6)): the malformed member does not count
    assert review["Decision"] == "Reject" and review["Summary"] == "Meta: reject, evidence thin."
    assert [r["Overall"] for r in review["Ensemble"]] == [4, 6]


def test_anthropic_client_and_zero_examples():
    with FakeLLMServer() as server:
        server.script = [review_json(8, "Accept")]
        client = anthropic.Anthropic(base_url=server.anthropic_url, api_key="test-key", max_retries=0)
        review = perform_review("text " * 100, "claude-3-5-sonnet-20241022", client, num_reflections=1,
                                num_fs_examples=1, num_reviews_ensemble=1)
        assert server.requests[0][0] == "/v1/messages"
    assert review["Decision"] == "Accept" and review["Overall"] == 8


def test_all_members_malformed_is_an_error():
    with FakeLLMServer() as server:
        server.script = [{"text": "nope"}] * 4
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        with pytest.raises(Exception, match="none of the 2 ensemble reviews"):
            perform_review("t " * 100, "m", client, num_reflections=1, num_fs_examples=0, num_reviews_ensemble=2)


def test_clean_pages_joins_hyphens_and_drops_running_lines():
    pages = [f"Under review at ICLR\nSection {i}: the experi-\nment uses ﬁve ﬂoats.\nBody {i}\n{i}"
             for i in range(1, 5)]
    text = clean_pages(pages)
    assert "experiment uses five floats." in text and "Under review" not in text
    assert "Body 3" in text and "\n3\n" not in f"\n{text}\n"


PAPER_TEX = r"""
\documentclass{article}
\usepackage{fancyhdr}\pagestyle{fancy}\fancyhead[C]{Under review as a conference paper}
\begin{document}
\section{Introduction}
BODY
\end{document}
"""


@needs_tex
def test_load_paper_on_a_compiled_pdf(tmp_path):
    body = "\n\n".join(f"Paragraph {i}: the efficient office staff find the workflow difficult. \\newpage"
                       for i in range(4))
    pdf = pdflatex(tmp_path, PAPER_TEX.replace("BODY", body))
    text = load_paper(pdf)
    assert "efficient office staff find the workflow difficult" in text
    assert "Under review as a conference paper" not in text
    assert "Paragraph 3" in text
    assert "Paragraph 3" not in load_paper(pdf, num_pages=2)


@needs_tex
def test_a_pdf_without_text_is_refused_naming_the_file(tmp_path):
    pdf = pdflatex(tmp_path, "\\documentclass{article}\\pagestyle{empty}\\begin{document}\\rule{5cm}{5cm}"
                             "\\end{document}", name="scanned")
    with pytest.raises(PaperError, match=r"scanned\.pdf: only \d+ characters"):
        load_paper(pdf)
    (tmp_path / "broken.pdf").write_text("not a pdf")
    with pytest.raises(PaperError, match="broken.pdf: not a PDF"):
        load_paper(tmp_path / "broken.pdf")


@needs_tex
def test_cli_reviews_the_grokking_template_paper(tmp_path):
    latex = tmp_path / "latex"
    shutil.copytree(REPO / "templates" / "grokking" / "latex", latex)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "template.tex"], cwd=latex, capture_output=True,
                   timeout=120)
    pdf = latex / "template.pdf"
    assert pdf.is_file()
    with FakeLLMServer() as server:
        # the two members run concurrently: their replies must not depend on arrival order
        server.script = [{"text": "OK"}] + [done(4)] * 4 + [review_json(9, summary="Chair: placeholder text only.")]
        env = os.environ | {"OPENAI_API_KEY": "test-key"}
        res = subprocess.run([sys.executable, "-m", "engine.review", str(pdf), "--model", "fake-model",
                              "--base-url", server.base_url, "--num-reviews-ensemble", "2", "--num-reflections", "2",
                              "--num-fs-examples", "0", "--out", str(tmp_path / "review.json")],
                             cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    review = json.loads((tmp_path / "review.json").read_text())
    assert review["Overall"] == 4 and review["Summary"] == "Chair: placeholder text only."
    assert "Decision: Reject   Overall: 4/10" in res.stdout and "model calls" in res.stdout
    assert "INTRO HERE" in server.requests[1][1]["messages"][-1]["content"]  # the paper's text reached the model


def test_cli_without_a_model_says_what_to_do(tmp_path):
    res = subprocess.run([sys.executable, "-m", "engine.review", str(tmp_path / "x.pdf")], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "needs a model" in res.stderr and "Traceback" not in res.stderr


