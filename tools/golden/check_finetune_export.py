#!/usr/bin/env python
"""Checks that what `paligemma finetune` exports is a real Hugging Face checkpoint (issue 5):
transformers loads it and gets the same logits as our engine.

For each fixture model (default pg2_gqa_window and pg1_mqa):
  1. `paligemma finetune` a few steps on three photos (full fine-tuning, --export-dtype f32;
     and a LoRA run with --export-merged), into a temp dir;
  2. transformers' PaliGemmaForConditionalGeneration.from_pretrained(RUN/model) (f32, eager),
     greedy generate on chelsea.png + "caption en" with output_logits;
  3. `paligemma run --model RUN/model --dump --precision f32 --sliding-window hf` on the same inputs,
     and peft.PeftModel.from_pretrained(base, RUN/adapter) (our PEFT files read by PEFT), and for LoRA also
     `paligemma run --model BASE --lora RUN/adapter --dump` (the adapter unmerged);
  4. the step logits must agree within 1e-4 of their largest value, the greedy tokens exactly,
     and the fine-tuned model must differ from the base (it was trained).

Usage: .venv-golden/bin/python tools/golden/check_finetune_export.py [--cli build/paligemma]
       [--models pg2_gqa_window,pg1_mqa] [--keep DIR]
Exit code 0 when every check holds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tools" / "golden"))

from fullsize_check import PHOTO, log, run_hf, run_ours  # noqa: E402

# Our engine in its transformers-exact mode: f32 products, transformers' sliding window.
EXACT = ["--quiet", "--precision", "f32", "--sliding-window", "hf"]

DATA = [
    {"image": "chelsea.png", "prefix": "caption en", "suffix": "a cat on a sofa"},
    {"image": "rocket.jpg", "prefix": "answer en what is this?", "suffix": "a rocket"},
    {"image": "coffee.png", "prefix": "detect cup", "suffix": "<loc0100><loc0200><loc0700><loc0800> cup"},
]


def finetune(cli: Path, model: Path, work: Path, name: str, lr: str, extra: list[str]) -> Path:
    out = work / name
    cmd = [str(cli), "finetune", "--model", str(model), "--train", str(work / "train.jsonl"), "--out", str(out),
           "--max-steps", "6", "--batch-size", "3", "--lr", lr, "--schedule", "constant", "--warmup", "0",
           "--export-dtype", "f32", "--quiet"] + extra
    log("[finetune] " + " ".join(cmd))
    subprocess.run(cmd, check=True)
    return out


def run_peft(name: str, base: Path, adapter: Path, out: Path, max_new_tokens: int) -> None:
    """transformers + PEFT: the base model with our adapter loaded by peft.PeftModel (unmerged)."""
    import torch
    from hf_utils import prompt_inputs
    from peft import PeftModel
    from transformers import PaliGemmaForConditionalGeneration

    from fullsize_check import PROMPT

    out.mkdir(parents=True, exist_ok=True)
    model = PaliGemmaForConditionalGeneration.from_pretrained(base, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    inputs = prompt_inputs(model.config, PHOTO, PROMPT)
    L = inputs["input_ids"].shape[1]
    with torch.no_grad():
        g = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, output_logits=True,
                           return_dict_in_generate=True, top_k=None, top_p=None, temperature=None)
    np.save(out / "generated_ids.npy", g.sequences[0, L:].numpy().astype("<i8"))
    np.save(out / "step_logits.npy", torch.stack([x[0] for x in g.logits]).numpy().astype("<f4"))
    log(f"[peft] {name}: PeftModel.from_pretrained({adapter}) greedy ids {g.sequences[0, L:].tolist()}")


def logits_agree(what: str, a_dir: Path, b_dir: Path) -> bool:
    a, b = np.load(a_dir / "step_logits.npy"), np.load(b_dir / "step_logits.npy")
    ga, gb = np.load(a_dir / "generated_ids.npy"), np.load(b_dir / "generated_ids.npy")
    t = min(a.shape[0], b.shape[0])
    diff = float(np.abs(a[:t].astype(np.float64) - b[:t]).max())
    scale = float(np.abs(a[:t]).max())
    ok = diff <= 1e-4 * scale and ga.tolist() == gb.tolist()
    log(f"[check] {what}: max |diff| {diff:.3e} of max |logit| {scale:.3g}; tokens {ga.tolist()} vs {gb.tolist()}"
        f" -> {'ok' if ok else 'FAIL'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=str(REPO / "build" / "paligemma"))
    ap.add_argument("--models", default="pg2_gqa_window,pg1_mqa")
    ap.add_argument("--keep", default="", help="work directory to keep (default: a temp dir, removed)")
    a = ap.parse_args()
    cli = Path(a.cli)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="pg-export-"))
    work.mkdir(parents=True, exist_ok=True)
    for p in ("chelsea.png", "rocket.jpg", "coffee.png"):
        shutil.copy(REPO / "tests" / "fixtures" / "photos" / p, work / p)
    (work / "train.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DATA))
    ok = True
    try:
        for name in a.models.split(","):
            base = REPO / "tests" / "fixtures" / "models" / name
            full = finetune(cli, base, work, f"{name}-full", "3e-3", [])
            lora = finetune(cli, base, work, f"{name}-lora", "1e-2",
                            ["--train-set", "lora", "--lora-rank", "4", "--export-merged"])
            run_hf(f"{name} base", base, work / f"{name}-base-hf", 4)
            for run in (full, lora):
                run_hf(f"{run.name} (transformers)", run / "model", run / "hf", 4)
                run_ours(f"{run.name} (ours)", run / "model", run / "ours", cli, 4, EXACT)
                ok &= logits_agree(f"{run.name}: transformers vs ours on the exported checkpoint", run / "hf",
                                   run / "ours")
                base_logits = np.load(work / f"{name}-base-hf" / "step_logits.npy")
                tuned = np.load(run / "hf" / "step_logits.npy")
                moved = float(np.abs(base_logits[:1] - tuned[:1]).max())
                log(f"[check] {run.name}: first-step logits moved by {moved:.3g} from the base model")
                ok &= moved > 1e-3
            run_ours(f"{name}-lora unmerged (ours)", base, lora / "ours-unmerged", cli, 4,
                     EXACT + ["--lora", str(lora / "adapter")])
            ok &= logits_agree(f"{name}-lora: transformers on the merged export vs ours with --lora (unmerged)",
                               lora / "hf", lora / "ours-unmerged")
            # Our PEFT files read by PEFT itself, on transformers' base model.
            run_peft(f"{name}-lora", base, lora / "adapter", lora / "peft", 4)
            ok &= logits_agree(f"{name}-lora: transformers + peft with our adapter vs ours with --lora", lora / "peft",
                               lora / "ours-unmerged")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    log("ALL CHECKS PASSED" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
