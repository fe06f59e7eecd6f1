#!/usr/bin/env python
"""Training speed and memory, ours against PyTorch + transformers (+ peft for LoRA), on the
same model and the same batch (issue 5): tools/golden photos with three (prefix, suffix)
examples, batch 3, a few optimizer steps.

  ours   `paligemma finetune --max-steps S --batch-size 3 --no-shuffle --schedule constant`
         (f32), tokens/s from its metrics.jsonl (median over steps 2..S), peak RSS of the process
  torch  PaliGemmaForConditionalGeneration (f32, eager, train()), the batch from
         PaliGemmaProcessor(suffix=...), torch.optim.AdamW, loss.backward(); for --mode lora,
         peft.get_peft_model(LoraConfig(r, alpha, target_modules=q,k,v,o,gate,up,down));
         time per step (median over steps 2..S), in a child process for its own peak RSS
  tokens/s counts the supervised (suffix + <eos>) tokens of the batch per second of a step:
  the same number for both.

Usage: .venv-golden/bin/python bench/train_compare.py [--model DIR] [--mode full|lora] [--steps 6]
       [--batch 3] [--threads 2] [--cli build/paligemma] [--out bench/results/x.json]
A torch child that dies (e.g. the OOM killer: PaliGemma 2 3B LoRA in f32 at batch 3 needs more
than 24 GiB) is reported with its peak RSS instead of a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "golden"))

EXAMPLES = [
    {"image": "chelsea.png", "prefix": "caption en", "suffix": "a cat on a sofa"},
    {"image": "rocket.jpg", "prefix": "answer en what is this?", "suffix": "a rocket"},
    {"image": "coffee.png", "prefix": "detect cup", "suffix": "<loc0100><loc0200><loc0700><loc0800> cup"},
]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def peak_rss_gib(ru) -> float:
    return ru.ru_maxrss * 1024 / 2**30


def run_ours(a, work: Path) -> dict:
    photos = REPO / "tests" / "fixtures" / "photos"
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps({**e, "image": str(photos / e["image"])}) + "\n" for e in EXAMPLES[:a.batch]))
    cmd = [a.cli, "finetune", "--model", a.model, "--train", str(data), "--out", str(work / "ours"), "--max-steps",
           str(a.steps), "--batch-size", str(a.batch), "--lr", "1e-4", "--schedule", "constant", "--warmup", "0",
           "--no-shuffle", "--quiet", "--threads", str(a.threads)]
    if a.mode == "lora":
        cmd += ["--train-set", "lora", "--lora-rank", str(a.rank), "--lora-alpha", str(2 * a.rank)]
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"ours failed: {' '.join(cmd)}")
    steps = [json.loads(l) for l in (work / "ours" / "metrics.jsonl").read_text().splitlines()]
    step_s = [s["tokens"] / s["tokens_per_s"] for s in steps[1:]]
    return {"tokens_per_step": steps[0]["tokens"], "step_s": statistics.median(step_s),
            "tokens_per_s": steps[0]["tokens"] / statistics.median(step_s), "peak_rss_gib": peak_rss_gib(ru),
            "wall_s": time.time() - t0, "losses": [s["loss"] for s in steps]}


def torch_child(a) -> None:
    import torch
    from hf_utils import make_processor
    from PIL import Image
    from transformers import PaliGemmaForConditionalGeneration

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = PaliGemmaForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32,
                                                              attn_implementation="eager").train()
    if a.mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, target_modules=TARGETS,
                                                 lora_dropout=0.0))
    vc = (model.config if a.mode == "full" else model.base_model.model.config).vision_config
    proc = make_processor(vc.image_size, vc.patch_size, Path(a.model) / "tokenizer.model")
    photos = REPO / "tests" / "fixtures" / "photos"
    examples = EXAMPLES[:a.batch]
    images = [Image.open(photos / e["image"]).convert("RGB") for e in examples]
    batch = proc(text=[e["prefix"] for e in examples], images=images, suffix=[e["suffix"] for e in examples],
                 padding="longest", return_tensors="pt")
    tokens = int((batch["labels"] != -100).sum())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times, losses = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        out = model(**batch, use_cache=False)
        out.loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(out.loss.detach()))
    step = statistics.median(times[1:])
    print(json.dumps({"tokens_per_step": tokens, "step_s": step, "tokens_per_s": tokens / step, "losses": losses}))


def run_torch(a) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", a.model, "--mode", a.mode, "--steps", str(a.steps),
           "--threads", str(a.threads), "--rank", str(a.rank), "--batch", str(a.batch)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:  # e.g. killed by the kernel's OOM killer (SIGKILL)
        return {"failed": True, "status": status, "peak_rss_gib": peak_rss_gib(ru)}
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss_gib"] = peak_rss_gib(ru)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "tests" / "fixtures" / "models" / "pg2_gqa_window"))
    ap.add_argument("--mode", choices=["full", "lora"], default="full")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--batch", type=int, default=3, choices=[1, 2, 3], help="examples per step (the first N)")
    ap.add_argument("--cli", default=str(REPO / "build" / "paligemma"))
    ap.add_argument("--out", default="")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        torch_child(a)
        return 0
    with tempfile.TemporaryDirectory() as t:
        ours = run_ours(a, Path(t))
    print(f"ours: {ours['step_s']:.3f} s/step, {ours['tokens_per_s']:.2f} tok/s, {ours['peak_rss_gib']:.2f} GiB",
          flush=True)
    theirs = run_torch(a)
    res = {"model": a.model, "mode": a.mode, "steps": a.steps, "threads": a.threads, "batch": a.batch, "ours": ours,
           "torch": theirs}
    if theirs.get("failed"):
        print(f"| {Path(a.model).name} {a.mode} batch {a.batch} | ours {ours['step_s']:.3f} s/step, "
              f"{ours['peak_rss_gib']:.2f} GiB | torch failed (exit status {theirs['status']}) at "
              f"{theirs['peak_rss_gib']:.2f} GiB peak |")
    else:
        res["speedup"] = ours["tokens_per_s"] / theirs["tokens_per_s"]
        res["memory_ratio"] = theirs["peak_rss_gib"] / ours["peak_rss_gib"]
        print(f"| {Path(a.model).name} {a.mode} | ours {ours['step_s']:.3f} s/step, {ours['tokens_per_s']:.1f} tok/s, "
              f"{ours['peak_rss_gib']:.2f} GiB | torch {theirs['step_s']:.3f} s/step, "
              f"{theirs['tokens_per_s']:.1f} tok/s, {theirs['peak_rss_gib']:.2f} GiB | speed {res['speedup']:.2f}x, "
              f"memory {res['memory_ratio']:.2f}x smaller |")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    return 1 if theirs.get("failed") else 0

if __name__ == "__main__":
    sys.exit(main())
