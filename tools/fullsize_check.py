#!/usr/bin/env python
"""Full-size parity check (NOT run in CI): random-weight PaliGemma checkpoints at the
real shapes (default PaliGemma 1 3B-224 and PaliGemma 2 3B-224; any variant of
tools/make_fullsize.py: pg1 / pg2 at 224 / 448 / 896 px, pg2-10b, pg2-28b, ...), the
Hugging Face reference in f32, then our CLI, compared tensor by tensor.

For each model:
  1. build   <work>/<model>/model with tools/make_fullsize.py (streaming): config.json
             in the style of the released config, bf16 safetensors shards (+ index) in
             the released (OLD) tensor layout (or --layout new), tokenizer.model copied from the fixture tokenizer.
             Random weights with the same O(1)-activation scheme as the fixtures.
  2. hf      PaliGemmaForConditionalGeneration (f32, eager) on
             tests/fixtures/photos/chelsea.png + "caption en": pixel_values,
             input_ids, image_features, greedy generate(max_new_tokens=N) with
             output_logits -> <work>/<model>/hf/*.npy.  The model is freed before 3.
  3. ours    build/paligemma run --model DIR --image PHOTO --prompt "caption en"
               --max-new-tokens N --dump <work>/<model>/ours [--cli-args ...]
  4. compare max |ours - hf| per tensor, greedy-token agreement.

Memory: the f32 reference of a 3B model needs ~12 GB; the two runs are sequential.
Disk: ~6 GB per 3B checkpoint under --work (~20 GB for 10B, ~55 GB for 28B; checked
before building).

Usage:
  .venv-golden/bin/python tools/fullsize_check.py [--work /tmp/pg-fullsize] [--models pg1,pg2]
      [--steps build,hf,ours,compare] [--cli build/paligemma] [--cli-args "--threads 0"]
      [--max-new-tokens 4] [--layout old|new] [--threads N]
"""

from __future__ import annotations

import argparse
import gc
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "golden"))
sys.path.insert(0, str(REPO / "tools"))

import numpy as np  # noqa: E402

from make_fullsize import build, model_spec, variant_names  # noqa: E402

PHOTO = REPO / "tests" / "fixtures" / "photos" / "chelsea.png"
PROMPT = "caption en"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def run_hf(name: str, d: Path, out: Path, max_new_tokens: int) -> None:
    import torch
    from hf_utils import prompt_inputs
    from transformers import PaliGemmaForConditionalGeneration

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log(f"[hf] {name}: loading {d} in float32 (eager attention) ...")
    model = PaliGemmaForConditionalGeneration.from_pretrained(d, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    log(f"[hf] {name}: loaded in {time.time() - t0:.0f} s")
    inputs = prompt_inputs(model.config, PHOTO, PROMPT)
    L = inputs["input_ids"].shape[1]
    with torch.no_grad():
        t1 = time.time()
        feats = model.model.get_image_features(inputs["pixel_values"]).pooler_output
        log(f"[hf] {name}: image features {tuple(feats.shape)} in {time.time() - t1:.0f} s; generating "
            f"{max_new_tokens} tokens from a {L}-token prompt ...")
        t1 = time.time()
        g = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, output_logits=True,
                           return_dict_in_generate=True, top_k=None, top_p=None, temperature=None)
        log(f"[hf] {name}: generate done in {time.time() - t1:.0f} s")
    gen = g.sequences[0, L:].numpy().astype("<i8")
    steps = torch.stack([x[0] for x in g.logits]).numpy().astype("<f4")
    np.save(out / "pixel_values.npy", inputs["pixel_values"].numpy().astype("<f4"))
    np.save(out / "input_ids.npy", inputs["input_ids"][0].numpy().astype("<i8"))
    np.save(out / "image_features.npy", feats.reshape(-1, feats.shape[-1]).numpy().astype("<f4"))
    np.save(out / "generated_ids.npy", gen)
    np.save(out / "step_logits.npy", steps)
    log(f"[hf] {name}: greedy ids {gen.tolist()}; logits[0] std {steps[0].std():.3f} "
        f"max |.| {np.abs(steps[0]).max():.3f}; saved to {out}")
    del model, g
    gc.collect()


def run_ours(name: str, d: Path, out: Path, cli: Path, max_new_tokens: int, extra: list[str]) -> bool:
    if not cli.exists():
        log(f"[ours] {name}: CLI {cli} not found (build it first); skipping")
        return False
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(cli), "run", "--model", str(d), "--image", str(PHOTO), "--prompt", PROMPT,
           "--max-new-tokens", str(max_new_tokens), "--dump", str(out)] + extra
    log(f"[ours] {name}: {shlex.join(cmd)}")
    t0 = time.time()
    r = subprocess.run(cmd)
    log(f"[ours] {name}: exit {r.returncode} after {time.time() - t0:.0f} s")
    return r.returncode == 0


def compare(name: str, hf: Path, ours: Path) -> bool:
    ok = True
    rows = []
    for f in ("pixel_values", "input_ids", "image_features", "generated_ids", "step_logits"):
        a_p, b_p = hf / f"{f}.npy", ours / f"{f}.npy"
        if not b_p.exists():
            rows.append((f, "missing in ours", ""))
            ok = False
            continue
        a, b = np.load(a_p), np.load(b_p)
        if f == "step_logits" and a.shape != b.shape and b.shape[0] >= 1:
            # compare the common prefix of steps (a different greedy path diverges after)
            t = min(a.shape[0], b.shape[0])
            a, b = a[:t], b[:t]
        if a.shape != b.shape:
            rows.append((f, f"shape hf {a.shape} vs ours {b.shape}", ""))
            ok = False
            continue
        if a.dtype.kind in "iu":
            same = int((a == b).sum())
            rows.append((f, f"{same}/{a.size} equal", "" if same == a.size else "MISMATCH"))
            ok &= same == a.size
        else:
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            scale = float(np.abs(a).max())
            rows.append((f, f"max abs diff {diff.max():.3e} (mean {diff.mean():.2e}; ref max |.| {scale:.3g})",
                         f"argmax rows equal: {bool((a.argmax(-1) == b.argmax(-1)).all())}" if f == "step_logits" else ""))
    log(f"[compare] {name}:")
    for r in rows:
        log(f"    {r[0]:16} {r[1]}  {r[2]}")
    g_hf, g_ours = np.load(hf / "generated_ids.npy"), (np.load(ours / "generated_ids.npy")
                                                         if (ours / "generated_ids.npy").exists() else None)
    if g_ours is not None:
        agree = 0
        for x, y in zip(g_hf.tolist(), g_ours.tolist()):
            if x != y:
                break
            agree += 1
        log(f"    greedy tokens agree for {agree}/{len(g_hf)} steps: hf {g_hf.tolist()} ours {g_ours.tolist()}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/pg-fullsize", type=Path)
    ap.add_argument("--models", default="pg1,pg2",
                    help="comma-separated variants (tools/make_fullsize.py): " + ", ".join(variant_names()))
    ap.add_argument("--shard-gb", default=2.0, type=float, help="build: maximum shard size in GB")
    ap.add_argument("--steps", default="build,hf,ours,compare")
    ap.add_argument("--cli", default=REPO / "build" / "paligemma", type=Path)
    ap.add_argument("--cli-args", default="--sliding-window hf --final-softcap on",
                    help="extra arguments for `paligemma run` (default: transformers semantics)")
    ap.add_argument("--max-new-tokens", default=4, type=int)
    ap.add_argument("--layout", default="old", choices=["old", "new"],
                    help="tensor names: old = released checkpoints (language_model.model.*), new = transformers 5.x")
    ap.add_argument("--threads", default=0, type=int, help="torch threads for the reference (0: all cores)")
    ap.add_argument("--smoke", action="store_true",
                    help="real widths but only 2 text and 2 vision layers: a quick test of the pipeline itself")
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    steps = set(a.steps.split(","))
    all_ok = True
    for name in a.models.split(","):
        spec = model_spec(name, a.smoke)
        name = spec["name"]
        d = a.work / (name + ("-smoke" if a.smoke else ""))
        mdir, hf_out, ours_out = d / "model", d / "hf", d / "ours"
        log(f"=== {name}: {spec['title']}")
        if "build" in steps:
            build(spec, mdir, a.layout, a.shard_gb)
        if "hf" in steps:
            run_hf(name, mdir, hf_out, a.max_new_tokens)
        if "ours" in steps:
            all_ok &= run_ours(name, mdir, ours_out, a.cli, a.max_new_tokens, shlex.split(a.cli_args))
        if "compare" in steps and (ours_out / "step_logits.npy").exists() and hf_out.exists():
            all_ok &= compare(name, hf_out, ours_out)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
