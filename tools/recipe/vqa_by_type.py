#!/usr/bin/env python3
"""VQA accuracy of a world-model evaluation by question type.

Reads the predictions that `paligemma eval --predictions FILE` writes and groups the `answer`
examples by the world's question templates (src/world/tasks.cpp): count, colour, shape,
position (left of / above), text, size, exists. Prints, per type, how many answers are exactly
right and the mean VQA accuracy (the `score` eval gave each one), and the most common answer,
which shows a model answering from the prior.

  python3 tools/recipe/vqa_by_type.py runs/world-model/predictions_mix.jsonl
"""
import collections
import json
import sys

TYPES = [  # (type, how its question starts or what it contains), in tasks.cpp's order
    ("count", lambda q: q.startswith("how many ")),
    ("colour", lambda q: q.startswith("what color is ")),
    ("shape", lambda q: q.startswith("what shape is ")),
    ("position", lambda q: q.startswith("is the ") and (" left of the " in q or " above the " in q)),
    ("text", lambda q: q == "what does the text say?"),
    ("size", lambda q: q.startswith("what size is ")),
    ("exists", lambda q: q.startswith("is there a ")),
]


def question_type(prefix):
    q = prefix.split(" ", 2)[2] if prefix.startswith("answer ") and prefix.count(" ") >= 2 else prefix
    for name, matches in TYPES:
        if matches(q):
            return name
    return "other"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: vqa_by_type.py PREDICTIONS.jsonl")
    rows = collections.defaultdict(list)
    with open(sys.argv[1]) as f:
        for n, line in enumerate(f, 1):
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"vqa_by_type: {sys.argv[1]} line {n} is not JSON: {e}")
            if r.get("task") == "answer":
                rows[question_type(r["prefix"])].append(r)
    if not rows:
        sys.exit(f"vqa_by_type: no answer examples in {sys.argv[1]}")
    print("| question type | exact | VQA accuracy | most common answer |")
    print("|---|---|---|---|")
    order = [t for t, _ in TYPES] + ["other"]
    for t in order:
        if t not in rows:
            continue
        rs = rows[t]
        exact = sum(bool(r["exact_match"]) for r in rs)
        acc = sum(r["score"] or 0.0 for r in rs) / len(rs)
        common, k = collections.Counter(r["prediction"] for r in rs).most_common(1)[0]
        print(f"| {t} | {exact}/{len(rs)} | {acc:.3f} | \"{common}\" ({k}/{len(rs)}) |")


if __name__ == "__main__":
    main()
