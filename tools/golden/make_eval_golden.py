"""Golden data for the evaluation metrics (src/eval): CIDEr-D and the VQA answer normalisation.

Independent references (installed packages, not code copied here):
  * CIDEr-D: pycocoevalcap 1.2, `pycocoevalcap.cider.Cider().compute_score` (the class COCO
    reports; its scorer clips and applies the Gaussian length penalty, i.e. CIDEr-D).
    pycocoevalcap tokenises with the Java PTB tokenizer, which the C++ does not run: both sides
    get the SAME pre-tokenised strings, made by `caption_tokens` below (the documented rule of
    pg::caption_tokens in include/paligemma/eval.h). The golden stores those tokens, so the C++
    test checks its tokeniser against them and the scorer against pycocoevalcap.
  * VQA: salesforce-lavis 1.0.2 `lavis/common/vqa_tools/vqa_eval.py` (`VQAEval`: the official
    GT-Vision-Lab/VQA vqaEval.py, processPunctuation / processDigitArticle / evaluate). The
    module is loaded from its file (install with `pip install --no-deps salesforce-lavis==1.0.2`;
    importing the `lavis` package would pull its heavy dependencies). Accuracies come from
    `VQAEval.evaluate` on fake VQA / result objects, with the references already normalised
    (the official ground truth is stored normalised; pg::vqa_accuracy normalises every string).

Writes tests/fixtures/eval/cider_golden.json and tests/fixtures/eval/vqa_golden.json.
Run: .venv-golden/bin/python tools/golden/make_eval_golden.py
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from pycocoevalcap.cider.cider import Cider

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "eval"

# pg::caption_tokens: ASCII lowercase; .,?!:;"`()[]{} -> space; split on whitespace; tokens made
# only of '-' / "'" dropped.
_DROP = set('.,?!:;"`()[]{}')


def caption_tokens(text: str) -> str:
    lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    spaced = "".join(" " if c in _DROP else c for c in lowered)
    words = [w for w in spaced.split() if w.strip("-'")]
    return " ".join(words)


CIDER_SETS = {
    # Several references per image (COCO style), varied lengths and overlaps.
    "multi_reference": [
        ("A cat sitting on a couch.", ["A cat is sitting on the couch.", "a grey cat on a sofa", "Cat resting on a couch"]),
        ("a dog running in the park", ["A dog runs through a grassy park.", "a brown dog running on grass", "dog playing in a park"]),
        ("two people riding bikes down the street",
         ["Two people ride bicycles down a city street.", "a couple of cyclists on the road", "two men riding bikes"]),
        ("a plate of food", ["A plate with rice, beans and salad.", "food on a white plate", "a dinner plate full of food"]),
        ("A red double-decker bus.", ["a red double-decker bus on the street", "a big red bus", "A bus that is red."]),
        ("a rocket launching into the sky", ["A rocket lifts off from the launch pad.", "a space rocket launching", "rocket taking off into the blue sky"]),
        ("a man", ["A man wearing a hat and holding a cup of coffee.", "man with coffee", "a person holding a mug"]),
        ("", ["an empty caption scores zero", "nothing was said"]),
    ],
    # One reference per image, as a fine-tuning JSONL gives it.
    "single_reference": [
        ("a cat on a couch", ["a cat on a couch"]),
        ("a cat on a couch", ["a dog on a couch"]),
        ("the the the the", ["the cat sat on the mat"]),
        ("a small bird perched on a branch", ["a bird on a tree branch"]),
        ("Coffee cup, on a wooden table!", ["a cup of coffee on a wooden table"]),
        ("a very very long caption that goes on and on about many things in the picture",
         ["a short caption"]),
    ],
    # Two images only (idf = log 2 - log df): tiny corpora are where idf edge cases live.
    "two_images": [
        ("a cat", ["a cat", "the cat"]),
        ("a black dog", ["a dog", "black dog"]),
    ],
}


def cider_case(name: str, items: list[tuple[str, list[str]]]) -> dict:
    cands = [c for c, _ in items]
    refs = [r for _, r in items]
    ctok = [caption_tokens(c) for c in cands]
    rtok = [[caption_tokens(x) for x in r] for r in refs]
    gts = {i: rtok[i] for i in range(len(items))}
    res = {i: [ctok[i]] for i in range(len(items))}
    score, scores = Cider().compute_score(gts, res)
    return {
        "name": name,
        "candidates": cands,
        "references": refs,
        "candidate_tokens": ctok,
        "reference_tokens": rtok,
        "score": float(score),
        "per_image": [float(s) for s in scores],
    }


def load_vqa_eval():
    spec = importlib.util.find_spec("lavis")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("salesforce-lavis is not installed: pip install --no-deps salesforce-lavis==1.0.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "common" / "vqa_tools" / "vqa_eval.py"
    mspec = importlib.util.spec_from_file_location("vqa_eval", path)
    module = importlib.util.module_from_spec(mspec)
    mspec.loader.exec_module(module)
    return module.VQAEval


VQA_ANSWERS = [
    "yes", "Yes", "  No  ", "two", "Two dogs", "the cat", "A cat.", "an apple", "none", "zero", "ten", "eleven",
    "1,000", "1,000 people", "hello, world", "hello,world", "red, white and blue", "e.g. this", "3.5", "3.5.",
    "end.", "dont", "Dont know", "isnt it", "im here", "youre", "i'm", "don't", "black-and-white", "black - and - white",
    "t-shirt", "left/right", "(a)", "[b]", "{c}", "x=y", "a+b", "back\\slash", "snake_case", "a>b", "a<b", "@home",
    "`tick`", "what?", "wow!", "what ?", "ok !", "semi;colon", "quote \"this\"", "tab\there", "new\nline",
    "many. dots. here. and. more", "." * 40, "a." * 40, "The Eiffel Tower", "THE END", "café", "4 o'clock",
    "ten dogs and one cat", "an", "the", "", "   ", "1.5 meters.", "no. 5", "mr. smith", "it's", "its",
]

# (prediction, references): multi-reference accuracies (VQAv2 has 10 answers per question).
VQA_ACCURACY = [
    ("yes", ["yes"] * 10),
    ("yes", ["yes"] * 3 + ["no"] * 7),
    ("yes", ["yes"] * 2 + ["no"] * 8),
    ("yes", ["yes"] * 1 + ["no"] * 9),
    ("Two", ["2"] * 4 + ["3"] * 6),
    ("the red one", ["red"] * 5 + ["red one"] * 5),
    ("blue", ["red"] * 10),
    ("", ["yes"] * 10),
]


class _Fake:
    def __init__(self, qa):
        self.qa = qa

    def getQuesIds(self):
        return list(self.qa.keys())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cider = {
        "reference": "pycocoevalcap 1.2 Cider().compute_score (n=4, sigma=6) on caption_tokens() strings",
        "tokenizer_cases": [{"text": t, "tokens": caption_tokens(t)} for t in
                            ["A Cat, on (the) mat!", "  dog's  toy - ball  ", "--- '' x", "Hello\tWorld\n", "e.g. 3.5 m"]],
        "sets": [cider_case(n, items) for n, items in CIDER_SETS.items()],
    }
    (OUT / "cider_golden.json").write_text(json.dumps(cider, indent=1, ensure_ascii=False) + "\n")

    VQAEval = load_vqa_eval()
    ev = VQAEval()

    def normalize(a: str) -> str:  # the result-answer pipeline of VQAEval.evaluate
        a = a.replace("\n", " ").replace("\t", " ").strip()
        return ev.processDigitArticle(ev.processPunctuation(a))

    norm = [{"answer": a, "normalized": normalize(a)} for a in VQA_ANSWERS]
    gts, res = {}, {}
    for q, (pred, refs) in enumerate(VQA_ACCURACY):
        gts[q] = {"answers": [{"answer": normalize(r), "answer_id": k + 1} for k, r in enumerate(refs)],
                  "question_type": "t", "answer_type": "a"}
        res[q] = {"answer": pred}
    acc_eval = VQAEval(_Fake(gts), _Fake(res), n=12)
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        acc_eval.evaluate()
    accuracy = [{"prediction": p, "references": r, "accuracy": acc_eval.evalQA[q] / 100.0}
                for q, (p, r) in enumerate(VQA_ACCURACY)]
    vqa = {
        "reference": "salesforce-lavis 1.0.2 lavis/common/vqa_tools/vqa_eval.py VQAEval (official vqaEval.py)",
        "normalization": norm,
        "accuracy": accuracy,
    }
    (OUT / "vqa_golden.json").write_text(json.dumps(vqa, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}/cider_golden.json ({sum(len(s['per_image']) for s in cider['sets'])} images) and "
          f"vqa_golden.json ({len(norm)} answers, {len(accuracy)} accuracies)")


if __name__ == "__main__":
    main()
