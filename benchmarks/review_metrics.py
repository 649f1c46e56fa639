"""Scoring reviews against ICLR decisions: the figures of the reviewer benchmark (scikit-learn / scipy)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score

from engine.errors import EngineError
from engine.inputs.files import read_text
from search.metric import finite_number

# a copy of ../shared/data/iclr2022/ratings_subset.tsv (500 ICLR 2022 papers: reviewer scores, decision)
DEFAULT_RATINGS = Path(__file__).resolve().parent / "data" / "iclr2022_ratings.tsv"
THRESHOLDS = (5, 6, 7, 8)


def load_ratings(path: Path = DEFAULT_RATINGS) -> dict[str, dict[str, Any]]:
    """paper_id -> {"scores": [human ratings], "accepted": bool}, in file order; EngineError naming the file (and
    the line) when it is missing, not UTF-8, or not a tab-separated table of paper_id, scores and decision."""
    if not Path(path).is_file():
        raise EngineError(f"{path}: the ICLR ratings file is missing (copy ../shared/data/iclr2022/ratings_subset.tsv)")
    reader = csv.DictReader(io.StringIO(read_text(Path(path), f"ratings file {path}"), newline=""), delimiter="\t")
    if not {"paper_id", "decision"} <= set(reader.fieldnames or ()):
        raise EngineError(f"ratings file {path}: a tab-separated table with the columns paper_id, the reviewers' "
                          f"scores and decision is expected; its header is {reader.fieldnames}")
    out: dict[str, dict[str, Any]] = {}
    for row in reader:
        where = f"ratings file {path}, line {reader.line_num}"
        if None in row or not row["paper_id"] or row["decision"] is None:
            raise EngineError(f"{where}: {len(row)} fields where the header has {len(reader.fieldnames or ())}")
        values = [row[k] for k in row if k not in ("paper_id", "decision") and row[k] not in ("", None)]
        scores = [finite_number(v) for v in values]
        if None in scores:
            raise EngineError(f"{where}: a score that is not a number ({values[scores.index(None)]!r})")
        out[row["paper_id"]] = {"scores": scores, "accepted": row["decision"].startswith("Accept")}
    if not out:
        raise EngineError(f"ratings file {path}: no papers in it")
    return out


def read_reviews(path: Path) -> list[dict[str, Any]]:
    """A table of reviews (CSV or Parquet, a file or a folder of Parquet parts) with paper_id, Overall, Decision."""
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such file or folder (a .csv, .tsv or .parquet table of reviews)")
    if path.is_dir() or path.suffix == ".parquet":
        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, pa.ArrowException) as e:
            raise EngineError(f"{path}: not a readable Parquet table of reviews ({str(e).splitlines()[0]})") from None
    elif path.suffix in (".csv", ".tsv"):
        rows = list(csv.DictReader(io.StringIO(read_text(path), newline=""),
                                   delimiter="\t" if path.suffix == ".tsv" else ","))
    else:
        raise EngineError(f"{path}: expected a .csv, .tsv or .parquet table of reviews")
    if rows and not {"paper_id", "Overall", "Decision"} <= set(rows[0]):
        raise EngineError(f"{path}: the table needs the columns paper_id, Overall and Decision; it has "
                          f"{sorted(rows[0])}")
    return rows




def decision_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[False, True]).ravel()
    return {"accuracy": accuracy_score(y, pred), "balanced_accuracy": balanced_accuracy_score(y, pred),
            "f1": f1_score(y, pred, zero_division=0.0), "fpr": fp / (fp + tn) if fp + tn else float("nan"),
            "fnr": fn / (fn + tp) if fn + tp else float("nan")}


def bootstrap_ci(y: np.ndarray, pred: np.ndarray, overall: np.ndarray, n_boot: int,
                 seed: int) -> dict[str, tuple[float, float]]:
    """95% intervals of every metric over bootstrap resamples stratified by the true decision."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        values = decision_metrics(y[idx], pred[idx]) | {"roc_auc": roc_auc_score(y[idx], overall[idx])}
        for k, v in values.items():
            samples.setdefault(k, []).append(v)
    return {k: tuple(float(x) for x in np.nanpercentile(v, [2.5, 97.5])) for k, v in samples.items()}


def score(reviews: list[dict[str, Any]], ratings: dict[str, dict[str, Any]], n_boot: int = 1000,
          seed: int = 0) -> dict[str, Any]:
    """Accuracy, balanced accuracy, F1, ROC AUC of Overall, FPR, FNR (with stratified bootstrap 95% intervals),
    decisions by Overall threshold, correlation with the human mean score, and the single-human baseline."""
    usable = [r for r in reviews if r["paper_id"] in ratings and finite_number(r["Overall"]) is not None
              and str(r["Decision"]).strip() in ("Accept", "Reject")]
    if not usable:
        raise EngineError("no usable reviews: rows need a paper_id from the ratings file, a numeric Overall and "
                          "a Decision of Accept or Reject")
    y = np.array([ratings[r["paper_id"]]["accepted"] for r in usable])
    pred = np.array([str(r["Decision"]).strip() == "Accept" for r in usable])
    overall = np.array([finite_number(r["Overall"]) for r in usable])
    human_mean = np.array([np.mean(ratings[r["paper_id"]]["scores"]) for r in usable])

    result: dict[str, Any] = {"n": len(usable), "n_dropped": len(reviews) - len(usable),
                              "accept_rate_true": float(y.mean()), "accept_rate_predicted": float(pred.mean())}
    result |= {k: float(v) for k, v in decision_metrics(y, pred).items()}
    result["roc_auc"] = float(roc_auc_score(y, overall))
    result["ci95"] = bootstrap_ci(y, pred, overall, n_boot, seed)
    result["by_threshold"] = {str(t): {k: float(v) for k, v in decision_metrics(y, overall >= t).items()}
                              | {"accept_rate": float((overall >= t).mean())} for t in THRESHOLDS}
    result["correlation_with_human_mean"] = {
        "pearson": float(stats.pearsonr(overall, human_mean)[0]),
        "spearman": float(stats.spearmanr(overall, human_mean)[0])}
    result["single_human_reviewer"] = single_human_baseline([r["paper_id"] for r in usable], ratings, seed=seed)
    return result


def single_human_baseline(paper_ids: list[str], ratings: dict[str, dict[str, Any]], threshold: float = 6.0,
                          draws: int = 200, seed: int = 0) -> dict[str, float]:
    """One randomly chosen human reviewer per paper, accepting when their rating is >= `threshold`; the mean
    over `draws` random choices (and the spread of those draws)."""
    rng = np.random.default_rng(seed)
    ids = [p for p in paper_ids if ratings[p]["scores"]]
    y = np.array([ratings[p]["accepted"] for p in ids])
    runs = []
    for _ in range(draws):
        picked = np.array([rng.choice(ratings[p]["scores"]) for p in ids])
        runs.append(decision_metrics(y, picked >= threshold))
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    out |= {f"{k}_sd": float(np.std([r[k] for r in runs])) for k in ("accuracy", "balanced_accuracy", "f1")}
    return out | {"threshold": threshold, "n": len(ids)}
