#!/usr/bin/env python
"""Full-size parity check (NOT run in CI): random-weight PaliGemma 1 3B-224 and
PaliGemma 2 3B-224 checkpoints at the real shapes, the Hugging Face reference in
f32, then our CLI, compared tensor by tensor.

For each model:
  1. build   <work>/<model>/ : config.json in the style of the released config,
             bf16 safetensors shards (+ index) in the released (OLD) tensor layout
             (or --layout new), tokenizer.model copied from the fixture tokenizer.
             Random weights with the same O(1)-activation scheme as the fixtures.
  2. hf      PaliGemmaForConditionalGeneration (f32, eager) on
             tests/fixtures/photos/chelsea.png + "caption en": pixel_values,
             input_ids, image_features, greedy generate(max_new_tokens=N) with
             output_logits -> <work>/<model>/hf/*.npy.  The model is freed before 3.
  3. ours    build/paligemma run --model DIR --image PHOTO --prompt "caption en"
               --max-new-tokens N --dump <work>/<model>/ours [--cli-args ...]
  4. compare max |ours - hf| per tensor, greedy-token agreement.

Memory: the f32 reference of a 3B model needs ~12 GB; the two runs are sequential.
Disk: ~6 GB per checkpoint under --work.

Usage:
  .venv-golden/bin/python tools/fullsize_check.py [--work /tmp/pg-fullsize] [--models pg1,pg2]
      [--steps build,hf,ours,compare] [--cli build/paligemma] [--cli-args "--threads 0"]
      [--max-new-tokens 4] [--layout old|new] [--threads N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "golden"))

import numpy as np  # noqa: E402

PHOTO = REPO / "tests" / "fixtures" / "photos" / "chelsea.png"
PROMPT = "caption en"
VOCAB = 257216
IMAGE_TOKEN = 257152

# Real shapes (docs: shared reference table; values of the released config.json files).
VISION = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
              patch_size=14, image_size=224)
MODELS = {
    "pg1": dict(
        title="PaliGemma 1 3B-224 (Gemma 2B)",
        text=dict(model_type="gemma", hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                  num_attention_heads=8, num_key_value_heads=1, head_dim=256),
        seed=1001,
    ),
    "pg2": dict(
        title="PaliGemma 2 3B-224 (Gemma 2 2B)",
        text=dict(model_type="gemma2", hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                  sliding_window=4096, attn_logit_softcapping=50.0, final_logit_softcapping=30.0),
        seed=1002,
    ),
}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def config_json(spec: dict) -> dict:
    """config.json in the style of the released google/paligemma-3b-pt-224 and
    google/paligemma2-3b-pt-224 files: only non-default fields.  PaliGemma 1:
    no head_dim (GemmaConfig default 256), no image_size (SigLIP default 224).
    PaliGemma 2: the top-level hidden_size is the stale 2048 of the released file
    (the real width is text_config.hidden_size = 2304)."""
    t, V = spec["text"], spec["vision"]
    n = (V["image_size"] // V["patch_size"]) ** 2
    vision = {
        "hidden_size": V["hidden_size"], "intermediate_size": V["intermediate_size"],
        "model_type": "siglip_vision_model", "num_attention_heads": V["num_attention_heads"],
        "num_hidden_layers": V["num_hidden_layers"], "num_image_tokens": n,
        "patch_size": V["patch_size"], "projection_dim": t["hidden_size"], "vision_use_head": False,
    }
    text = {
        "hidden_size": t["hidden_size"], "intermediate_size": t["intermediate_size"],
        "model_type": t["model_type"], "num_attention_heads": t["num_attention_heads"],
        "num_hidden_layers": t["num_hidden_layers"], "num_image_tokens": n,
        "num_key_value_heads": t["num_key_value_heads"], "vocab_size": VOCAB,
    }
    top = {
        "architectures": ["PaliGemmaForConditionalGeneration"], "bos_token_id": 2, "eos_token_id": 1,
        "image_token_index": IMAGE_TOKEN, "model_type": "paligemma", "pad_token_id": 0,
        "projection_dim": t["hidden_size"],
    }
    if t["model_type"] == "gemma":
        vision["projector_hidden_act"] = "gelu_fast"
        text["torch_dtype"] = "float32"
        top.update({"hidden_size": 2048, "ignore_index": -100, "torch_dtype": "float32",
                    "transformers_version": "4.41.0.dev0"})
    else:
        text.update({"head_dim": t["head_dim"], "hidden_activation": "gelu_pytorch_tanh",
                     "query_pre_attn_scalar": t["query_pre_attn_scalar"],
                     "sliding_window": t["sliding_window"],
                     "attn_logit_softcapping": t["attn_logit_softcapping"],
                     "final_logit_softcapping": t["final_logit_softcapping"],
                     "cache_implementation": "hybrid", "torch_dtype": "bfloat16"})
        vision["torch_dtype"] = "bfloat16"
        top.update({"hidden_size": 2048, "torch_dtype": "bfloat16", "transformers_version": "4.47.0.dev0"})
    top["text_config"] = dict(sorted(text.items()))
    top["vision_config"] = dict(sorted(vision.items()))
    return dict(sorted(top.items()))


def tensor_specs(spec: dict) -> list[tuple[str, tuple[int, ...]]]:
    """(name in the NEW layout, shape) of every stored tensor; lm_head is tied (absent)."""
    t, v = spec["text"], spec["vision"]
    H, I, hd = t["hidden_size"], t["intermediate_size"], t["head_dim"]
    nq, nkv = t["num_attention_heads"], t["num_key_value_heads"]
    out = [("model.language_model.embed_tokens.weight", (VOCAB, H)),
           ("model.language_model.norm.weight", (H,))]
    norms = ["input_layernorm", "post_attention_layernorm"]
    if t["model_type"] == "gemma2":
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    for i in range(t["num_hidden_layers"]):
        p = f"model.language_model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (nq * hd, H)), (p + "self_attn.k_proj.weight", (nkv * hd, H)),
                (p + "self_attn.v_proj.weight", (nkv * hd, H)), (p + "self_attn.o_proj.weight", (H, nq * hd)),
                (p + "mlp.gate_proj.weight", (I, H)), (p + "mlp.up_proj.weight", (I, H)),
                (p + "mlp.down_proj.weight", (H, I))]
        out += [(p + n + ".weight", (H,)) for n in norms]
    VH, VI, P = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    N = (v["image_size"] // P) ** 2
    vp = "model.vision_tower.vision_model."
    out += [(vp + "embeddings.patch_embedding.weight", (VH, 3, P, P)), (vp + "embeddings.patch_embedding.bias", (VH,)),
            (vp + "embeddings.position_embedding.weight", (N, VH)),
            (vp + "post_layernorm.weight", (VH,)), (vp + "post_layernorm.bias", (VH,))]
    for i in range(v["num_hidden_layers"]):
        p = f"{vp}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out += [(p + f"self_attn.{n}.weight", (VH, VH)), (p + f"self_attn.{n}.bias", (VH,))]
        out += [(p + "mlp.fc1.weight", (VI, VH)), (p + "mlp.fc1.bias", (VI,)),
                (p + "mlp.fc2.weight", (VH, VI)), (p + "mlp.fc2.bias", (VH,))]
        for n in ("layer_norm1", "layer_norm2"):
            out += [(p + n + ".weight", (VH,)), (p + n + ".bias", (VH,))]
    out += [("model.multi_modal_projector.linear.weight", (H, VH)),
            ("model.multi_modal_projector.linear.bias", (H,))]
    return out


def init_tensor(name: str, shape, seed: int, text: dict):
    """Same O(1)-activation scheme as tools/golden/make_models.py, with the
    embedding std scaled to the width (logits std ~ 4 at any hidden size)."""
    import torch
    from make_models import _std_for

    spec = {"qk_gain": 1.5, "embed_std": 2.0 / text["hidden_size"] ** 0.5,
            "post_norm_mean": 2.0 if text["model_type"] == "gemma2" else 0.0}
    mean, std = _std_for(name, tuple(shape), spec)
    g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    x = torch.randn(tuple(shape), generator=g, dtype=torch.float32) * std + mean
    if name.endswith("embed_tokens.weight"):
        from common import filler_range

        first, end = filler_range()  # '<unusedN>' filler rows of the fixture tokenizer: zero, as in the fixtures
        x[first:end] = 0.0
    return x.to(torch.bfloat16)


def old_name(k: str) -> str:
    if k.startswith("model.language_model."):
        return "language_model.model." + k[len("model.language_model."):]
    if k.startswith("model."):
        return k[len("model."):]
    return k


def build(name: str, spec: dict, d: Path, layout: str, shard_bytes: int = 2_000_000_000) -> None:
    from safetensors.torch import save_file

    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config_json(spec), indent=2) + "\n")
    shutil.copy(REPO / "tests" / "fixtures" / "models" / "tokenizer.model", d / "tokenizer.model")
    specs = tensor_specs(spec)
    total_params = sum(int(np.prod(s)) for _, s in specs)
    log(f"[build] {name}: {spec['title']}: {len(specs)} tensors, {total_params / 1e9:.2f} B parameters")
    shards, cur, cur_bytes = [], {}, 0
    t0 = time.time()
    for i, (k, shape) in enumerate(specs):
        x = init_tensor(k, shape, spec["seed"], spec["text"])
        cur[old_name(k) if layout == "old" else k] = x
        cur_bytes += x.numel() * 2
        if cur_bytes >= shard_bytes:
            shards.append(cur)
            p = d / f"tmp-{len(shards):05d}.safetensors"
            save_file(cur, str(p), metadata={"format": "pt"})
            log(f"[build]   shard {len(shards)}: {len(cur)} tensors, {cur_bytes / 1e9:.2f} GB ({i + 1}/{len(specs)}, "
                f"{time.time() - t0:.0f} s)")
            shards[-1] = list(cur.keys())
            cur, cur_bytes = {}, 0
    if cur:
        save_file(cur, str(d / f"tmp-{len(shards) + 1:05d}.safetensors"), metadata={"format": "pt"})
        shards.append(list(cur.keys()))
    n = len(shards)
    weight_map = {}
    for i, keys in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        os.replace(d / f"tmp-{i + 1:05d}.safetensors", d / fname)
        weight_map.update({k: fname for k in keys})
    index = {"metadata": {"total_size": total_params * 2}, "weight_map": dict(sorted(weight_map.items()))}
    (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    log(f"[build] {name}: wrote {n} shards to {d} in {time.time() - t0:.0f} s")


def run_hf(name: str, d: Path, out: Path, max_new_tokens: int) -> None:
    import torch
    from hf_utils import make_processor
    from transformers import PaliGemmaForConditionalGeneration
    from transformers.image_utils import load_image

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log(f"[hf] {name}: loading {d} in float32 (eager attention) ...")
    model = PaliGemmaForConditionalGeneration.from_pretrained(d, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    log(f"[hf] {name}: loaded in {time.time() - t0:.0f} s")
    vc = model.config.vision_config
    proc = make_processor(vc.image_size, vc.patch_size)
    inputs = proc(images=load_image(str(PHOTO)), text=PROMPT, return_tensors="pt")
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
    ap.add_argument("--models", default="pg1,pg2")
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
        spec = json.loads(json.dumps(MODELS[name]))
        spec["vision"] = dict(VISION)
        if a.smoke:
            spec["text"]["num_hidden_layers"] = 2
            spec["vision"]["num_hidden_layers"] = 2
            spec["title"] += " [smoke: 2+2 layers]"
        d = a.work / (name + ("-smoke" if a.smoke else ""))
        mdir, hf_out, ours_out = d / "model", d / "hf", d / "ours"
        log(f"=== {name}: {spec['title']}")
        if "build" in steps:
            build(name, spec, mdir, a.layout)
        if "hf" in steps:
            run_hf(name, mdir, hf_out, a.max_new_tokens)
        if "ours" in steps:
            all_ok &= run_ours(name, mdir, ours_out, a.cli, a.max_new_tokens, shlex.split(a.cli_args))
        if "compare" in steps and (ours_out / "step_logits.npy").exists() and hf_out.exists():
            all_ok &= compare(name, hf_out, ours_out)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
