"""Plot every run_* folder here: validation and training accuracy and loss curves, one panel per dataset."""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

runs = sorted(d for d in os.listdir(".") if d.startswith("run_") and os.path.isfile(os.path.join(d, "curves.json")))
if not runs:
    raise SystemExit("no run_*/curves.json found")
curves = {run: json.load(open(os.path.join(run, "curves.json"))) for run in runs}
datasets = sorted({ds for c in curves.values() for ds in c})

for metric, ylabel in (("acc", "accuracy"), ("loss", "loss")):
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for run in runs:
            for seed, c in enumerate(curves[run].get(ds, [])):
                label = f"{run} val" if seed == 0 else None
                ax.plot(c["step"], c[f"val_{metric}"], color="C0", alpha=0.8, label=label)
                ax.plot(c["step"], c[f"train_{metric}"], color="C1", alpha=0.5, linestyle="--",
                        label=f"{run} train" if seed == 0 else None)
        ax.set_title(ds)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if metric == "loss":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{metric}_curves.png", dpi=110)
    plt.close(fig)
print("wrote acc_curves.png and loss_curves.png")
