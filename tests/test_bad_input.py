"""Every file a user hands in, and every output path, refused in one line that names it (issue 25): missing, not
readable, not UTF-8, malformed, of the wrong shape; at the launch before Hydra makes the run directory, in the
reviewer's command line before any model call is paid for, in the benchmarks' command lines. The kinds of bad
input covered are listed in docs/robustness.md."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from engine.llm.ledger import CallRecord, Ledger
from engine.llm.loopback import FakeLLMServer
from tests.conftest import FIXTURES, REPO, launch

NOT_UTF8 = b'[{"Name": "caf\xe9", "Title": "T"}]'  # Latin-1, as an old editor saves it


def refused(res: subprocess.CompletedProcess, *needles: str) -> str:
    """The one line of a refusal: exit status 2, no traceback, each needle in it."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and len(lines) == 1, res.stderr[-3000:]
    assert all(n in lines[0] for n in needles), lines[0]
    return lines[0]


# -- the launch: files named on the command line ----------------------------------------------------------------
@pytest.mark.parametrize("content, needle", [
    (NOT_UTF8, "not UTF-8 text (byte 0xe9 on line 1); save it as UTF-8"),
    (b'[{"Name": "a", "Title": ', "not valid JSON (line 1"),
    (b'{"a": 1}', "does not hold one list of ideas"),
    (b"[3]", "idea [0] is a int"),
])
def test_an_ideas_file_that_cannot_be_used_is_named_before_the_run_directory(tmp_path, content, needle):
    ideas = tmp_path / "ideas.json"
    ideas.write_bytes(content)
    res = launch("+topic=grokking", f"ideas.load={ideas}", f"hydra.run.dir={tmp_path / 'run'}")
    refused(res, f"ideas.load={ideas}", needle)
    assert not (tmp_path / "run").exists()


def test_a_folder_as_the_ideas_file_is_named(tmp_path):
    res = launch("+topic=grokking", f"ideas.load={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    refused(res, "ideas.load=", "a folder, not a file")


def test_a_topic_file_that_is_not_utf8_is_named(tmp_path):
    topic = tmp_path / "topic.md"
    topic.write_bytes((FIXTURES / "topics" / "tiny_regression.md").read_bytes() + "caf\u00e9\n".encode("latin-1"))
    res = launch("+topic=file", f"topic.file={topic}", "model.base_url=http://127.0.0.1:9/v1", "model.name=m",
                 f"hydra.run.dir={tmp_path / 'run'}")
    refused(res, f"topic file {topic}", "not UTF-8")
    assert not (tmp_path / "run").exists()


def test_a_template_file_that_is_not_utf8_is_named(tmp_path, v1_template):
    (v1_template / "experiment.py").write_bytes(b"# caf\xe9\n" + (v1_template / "experiment.py").read_bytes())
    res = launch("+topic=template", f"topic.path={v1_template}", f"hydra.run.dir={tmp_path / 'run'}")
    refused(res, "experiment.py: not UTF-8")
    assert not (tmp_path / "run").exists()


def test_resuming_a_folder_that_does_not_exist_makes_nothing(tmp_path):
    res = launch(f"resume={tmp_path / 'nope'}")
    refused(res, f"resume={tmp_path / 'nope'}: no config.yaml there")
    assert not (tmp_path / "nope").exists()  # Hydra used to make it, with .hydra/ and launch.log


@pytest.mark.parametrize("content, needle", [
    (b"topic: {name: x\n  path: [\n", "not valid YAML: line 2"),
    (b"- a\n- b\n", "a mapping of sections was expected"),
    (b"seed: \xff\n", "not UTF-8"),
])
def test_resuming_a_run_whose_config_is_damaged_names_the_file_and_what_to_do(tmp_path, content, needle):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(content)
    res = launch(f"resume={run}")
    refused(res, f"{run / 'config.yaml'} is the run's resolved config; fix it by hand, or start a new run", needle)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_a_launch_refused_after_hydra_made_the_run_directory_removes_it(tmp_path):
    """A model without its API key is found when the run's model is built, after Hydra made the run directory:
    the directory goes again, as it holds nothing but what the launch wrote."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    res = subprocess.run([sys.executable, "-m", "engine.launch", "+topic=grokking", "model=gpt-4o", "tracking=none",
                          f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert "needs an API key in $OPENAI_API_KEY" in res.stderr
    assert not (tmp_path / "run").exists()


# -- the reviewer's command line ---------------------------------------------------------------------------------
def review(*args: str, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.review", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_an_output_path_that_cannot_be_written_is_refused_before_any_model_call(tmp_path):
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4 not really")
    with FakeLLMServer() as server:
        env = os.environ | {"OPENAI_API_KEY": "test-key"}
        res = review(str(pdf), "--model", "m", "--base-url", server.base_url, "--out", "missing/dir/review.json",
                     cwd=tmp_path, env=env)
        assert server.requests == []  # nothing was paid for
    refused(res, "--out missing/dir/review.json: no folder", "create it first")


@pytest.mark.parametrize("content, needle", [
    (None, "paper.pdf: cannot read the file: No such file or directory"),
    (b"hello", "paper.pdf: not a PDF"),
    (b"%PDF-1.4\n1 0 obj <<", "paper.pdf: cannot read the PDF"),
])
def test_a_pdf_that_cannot_be_read_is_named(tmp_path, content, needle):
    if content is not None:
        (tmp_path / "paper.pdf").write_bytes(content)
    refused(review("paper.pdf", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", cwd=tmp_path), needle)


def test_a_bad_number_on_the_reviewers_command_line_is_one_line(tmp_path):
    refused(review("paper.pdf", "--num-reflections", "0", cwd=tmp_path), "argument --num-reflections: 0 is below 1")


# -- the benchmarks' command lines -------------------------------------------------------------------------------
def bench(module: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"WANDB_MODE": "offline"})


def test_iclr_scoring_names_a_missing_table_a_malformed_ratings_file_and_an_unwritable_output(tmp_path):
    refused(bench("benchmarks.iclr_review", "--score", "missing.csv", cwd=tmp_path), "missing.csv: no such file")
    table = tmp_path / "v1.csv"
    table.write_bytes((FIXTURES / "v1_gpt4o_fewshot1_reflect5_ensemble5.csv").read_bytes())
    bad = tmp_path / "ratings.tsv"
    bad.write_text("paper_id\t0\tdecision\nabc\tsix\tAccept\n")
    refused(bench("benchmarks.iclr_review", "--score", "v1.csv", "--ratings", str(bad), cwd=tmp_path),
            f"ratings file {bad}, line 2: a score that is not a number ('six')")
    bad.write_text("id,score\n1,2\n")
    refused(bench("benchmarks.iclr_review", "--score", "v1.csv", "--ratings", str(bad), cwd=tmp_path),
            "a tab-separated table with the columns paper_id")
    refused(bench("benchmarks.iclr_review", "--score", "v1.csv", "--out", "nodir/scores.json", cwd=tmp_path),
            "--out: no folder")
    refused(bench("benchmarks.iclr_review", "--score", "v1.csv", "--batch_size", "0", cwd=tmp_path),
            "argument --batch_size: 0 is below 1")


def test_batch_size_bounds_the_papers_in_review_at_once():
    from benchmarks.iclr_review import papers_in_flight, parser

    assert papers_in_flight(parser().parse_args(["--batch_size", "3", "--max-llm-calls", "100"])) == 3
    assert papers_in_flight(parser().parse_args(["--batch_size", "100", "--max-llm-calls", "16",
                                                 "--num_reviews_ensemble", "5"])) == 3


def test_slot_usage_names_a_folder_that_is_not_a_run(tmp_path):
    refused(bench("benchmarks.slot_usage", "missing_run", cwd=tmp_path), "missing_run: no such folder")
    (tmp_path / "empty").mkdir()
    refused(bench("benchmarks.slot_usage", "empty", cwd=tmp_path), "empty: no journal/ there")


def scaling_run(sweep, name, model="gpt-4o-2024-08-06", review_by=None, overall=6.0):
    run = sweep / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name": model, "release_date": "2024-08-06"},
                                                     "llm": {"roles": {"review": review_by}}, "seed": 0,
                                                     "tracking": {"kind": "none"}}))
    (run / "summary.json").write_text(json.dumps({"status": "finished", "review": {"Overall": overall}}))
    Ledger(run, name).append(CallRecord(
        run=name, seq=0, node=None, step=None, stage="initial", role="code", model=model, provider="openai",
        input_tokens=1000, output_tokens=100, cached_tokens=0, cost_usd=0.01, latency_s=0.1, ok=True, error=None,
        replayed=False, time=0.0))
    return run


@pytest.mark.parametrize("damage, needle", [
    (lambda run, sweep: (run / "summary.json").write_text('{"status": '), "summary.json: not valid JSON"),
    (lambda run, sweep: (run / "summary.json").write_text("[1, 2]"), "summary.json: expected a mapping"),
    (lambda run, sweep: (sweep / "sweep.json").write_bytes(b"\xff\xfe"), "sweep.json: not UTF-8"),
    (lambda run, sweep: (run / "config.yaml").write_text("model: [\n"), "config.yaml: not valid YAML"),
    (lambda run, sweep: next((run / "llm" / "ledger").glob("*.parquet")).write_bytes(b"PAR1"),
     "not a readable ledger part"),
])
def test_the_scaling_analysis_names_a_damaged_file_of_a_sweep(tmp_path, damage, needle):
    sweep = tmp_path / "sweep"
    run = scaling_run(sweep, "model=a")
    damage(run, sweep)
    refused(bench("benchmarks.scaling", str(sweep), "--out", str(tmp_path / "out"), "--tracking", "none",
                  cwd=tmp_path), needle)
    assert not (tmp_path / "out").exists()  # refused before it wrote anything


def test_the_scaling_analysis_refuses_a_benchmark_file_that_is_not_one(tmp_path):
    sweep = tmp_path / "sweep"
    scaling_run(sweep, "model=a")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"n": 10, "accuracy": 0.5}))
    refused(bench("benchmarks.scaling", str(sweep), "--out", str(tmp_path / "out"), "--tracking", "none",
                  "--review-benchmark", str(metrics), cwd=tmp_path),
            "not the metrics.json of benchmarks.iclr_review: no number 'balanced_accuracy'")


def test_a_benchmark_of_another_model_never_vouches_for_the_runs_reviewer(tmp_path):
    """Model identity is exact (conf/model names resolved to the provider's): a gpt-4o-mini benchmark says nothing
    about gpt-4o reviews, while a benchmark run as `gpt-4o` is the reviewer gpt-4o-2024-08-06."""
    from benchmarks.scaling import calibration

    figures = {"n": 500, "balanced_accuracy": 0.6, "accuracy": 0.7, "f1": 0.4, "roc_auc": 0.7}
    mini, full = tmp_path / "mini.json", tmp_path / "full.json"
    mini.write_text(json.dumps(figures | {"model": "gpt-4o-mini"}))
    full.write_text(json.dumps(figures | {"model": "gpt-4o"}))
    assert "not the reviewer of these runs" in "\n".join(calibration([mini], ["gpt-4o-2024-08-06"]))
    assert "not the reviewer of these runs" in "\n".join(calibration([mini], ["gpt-4o"]))  # once: a name prefix
    assert "not the reviewer of these runs" not in "\n".join(calibration([full], ["gpt-4o-2024-08-06"]))
    # the reviewer named by its conf/model entry and by its provider's name is one reviewer, not two
    assert "different reviewers" not in "\n".join(calibration([full], ["gpt-4o", "gpt-4o-2024-08-06"]))
