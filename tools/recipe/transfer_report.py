#!/usr/bin/env python3
"""The table of tools/recipe/transfer_demo.sh (standard library only).

Usage: transfer_report.py OUT METRIC
  METRIC: the eval metric, "<task>.<name>" as metrics.jsonl's val_metrics spell it
          (caption.cider, answer.vqa_accuracy)

Reads the task, steps and batch from OUT/settings.txt (written by transfer_demo.sh),
OUT/{pt,scratch}-lr*/metrics.jsonl (the validation metric at each evaluation step),
test.json (`paligemma eval --json` on the test split) and test_predictions.jsonl of each
finished run, OUT/pt-zero-shot.json and the world splits in OUT/world. Per arm, the run with the
best final validation metric is chosen (ties: the earlier run; every learning rate tried in OUT
counts, and transfer_demo.sh keeps one OUT to one set of data and training settings); the test
split chooses nothing.
Writes OUT/transfer.md, OUT/transfer.json and OUT/chosen.txt ("<pt run> <scratch run>", the
directories the plot draws).
"""
import collections
import glob
import json
import os
import sys


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def val_curve(run, metric):
    curve = [(r["step"], r["val_metrics"][metric]) for r in read_jsonl(os.path.join(run, "metrics.jsonl"))
             if metric in r.get("val_metrics", {})]
    if not curve:
        sys.exit(f"transfer_report: no validation {metric} in {run}/metrics.jsonl")
    return curve


def test_metric(path, metric):
    task, name = metric.split(".", 1)
    with open(path) as f:
        return json.load(f)["tasks"][task][name]


def hexagon_naming(predictions_path):
    """(recall, precision, captions with a hexagon): of the test captions whose target names a
    hexagon, the fraction whose prediction does too; of the predictions naming one, the fraction
    whose target does."""
    records = read_jsonl(predictions_path)
    with_hexagon = [r for r in records if any("hexagon" in t for t in r["targets"])]
    said = [r for r in records if "hexagon" in r["prediction"]]
    if not with_hexagon:
        return None
    recall = sum("hexagon" in r["prediction"] for r in with_hexagon) / len(with_hexagon)
    precision = sum(any("hexagon" in t for t in r["targets"]) for r in said) / len(said) if said else 0.0
    return recall, precision, len(with_hexagon)


def main():
    out, metric = sys.argv[1:3]
    with open(os.path.join(out, "settings.txt")) as f:
        settings = dict(item.split("=", 1) for item in f.read().split() if "=" in item)
    task, steps, batch = settings["task"], settings["steps"], settings["batch"]
    runs = {}
    for arm in ("pt", "scratch"):
        for run in sorted(glob.glob(os.path.join(out, f"{arm}-lr*"))):
            if not os.path.exists(os.path.join(run, "done")):
                continue
            curve = val_curve(run, metric)
            runs[os.path.basename(run)] = {
                "arm": arm,
                "lr": os.path.basename(run)[len(arm) + 3:],
                "val_curve": curve,
                "val_final": curve[-1][1],
                "test": test_metric(os.path.join(run, "test.json"), metric),
                "hexagon_naming": hexagon_naming(os.path.join(run, "test_predictions.jsonl")),
            }
    chosen = {}
    for arm in ("pt", "scratch"):
        mine = [name for name, r in runs.items() if r["arm"] == arm]
        if not mine:
            sys.exit(f"transfer_report: no finished {arm} run in {out}")
        chosen[arm] = max(mine, key=lambda name: runs[name]["val_final"])  # max keeps the first of ties
    train = read_jsonl(os.path.join(out, "world", "train.jsonl"))
    test = read_jsonl(os.path.join(out, "world", "test.jsonl"))
    zero_shot = test_metric(os.path.join(out, "pt-zero-shot.json"), metric)
    zero_shot_naming = hexagon_naming(os.path.join(out, "pt-zero-shot_predictions.jsonl"))
    with_recall = task == "hexagon"

    def naming_cell(naming):
        return f" {naming[0]:.3f} / {naming[1]:.3f} |" if naming else " - |"

    header = f"| model | learning rate | validation {metric} (final) | test {metric} |"
    rule = "|---|---|---|---|"
    if with_recall:
        header += " hexagons named: recall / precision |"
        rule += "---|"
    hexagon_captions = sum("hexagon" in r["suffix"] for r in test)
    lines = [
        f"Task `{task}`: {len(train)} training examples, {steps} steps of {batch}, a test split of "
        f"{len(test)} held-out examples" + (f" ({hexagon_captions} with a hexagon)." if with_recall else "."),
        "",
        header,
        rule,
        f"| pt, zero-shot | - | - | {zero_shot:.3f} |" + (naming_cell(zero_shot_naming) if with_recall else ""),
    ]
    majority = majority_test = None
    if metric.startswith("answer."):
        # The best a model that ignores the image can do: the training set's most common answer.
        majority, _ = collections.Counter(r["suffix"] for r in train).most_common(1)[0]
        majority_test = sum(r["suffix"] == majority for r in test) / len(test)
        lines.append(f"| always \"{majority}\" (the most common training answer) | - | - | {majority_test:.3f} |")
    for arm, label in (("pt", "fine-tuned from pt"), ("scratch", "trained from scratch")):
        for name, r in runs.items():
            if r["arm"] != arm:
                continue
            mark = " (chosen)" if name == chosen[arm] else ""
            row = f"| {label}{mark} | {r['lr']} | {r['val_final']:.3f} | {r['test']:.3f} |"
            if with_recall:
                row += naming_cell(r["hexagon_naming"])
            lines.append(row)
    with open(os.path.join(out, "transfer.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "transfer.json"), "w") as f:
        json.dump({"task": task, "metric": metric, "train_examples": len(train), "test_examples": len(test),
                   "steps": int(steps), "batch": int(batch), "zero_shot_test": zero_shot,
                   "zero_shot_hexagon_naming": zero_shot_naming, "majority_answer": majority,
                   "majority_test": majority_test, "chosen": chosen, "runs": runs}, f, indent=1)
    with open(os.path.join(out, "chosen.txt"), "w") as f:
        f.write(f"{chosen['pt']} {chosen['scratch']}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
