"""The held-out evaluation of a grokking run (manifest.yaml held_out): accuracy on the reserved pairs, those the
program never trained or validated on, from the answers it gave for them (run_0/reserved_predictions.json).

The engine runs this only in the final evaluation's runs, after experiment.py, and never shows it to a model or
gives it to the search's own runs: the search cannot see, and so cannot tune for, this metric.
"""
import json

with open("run_0/reserved_predictions.json") as f:
    reserved = json.load(f)
accuracies = [sum(p == a for p, a in zip(run["predicted"], run["answer"])) / max(1, len(run["answer"]))
              for runs in reserved.values() for run in runs]
with open("run_0/held_out.json", "w") as f:
    json.dump({"final_test_acc": sum(accuracies) / len(accuracies)}, f)
