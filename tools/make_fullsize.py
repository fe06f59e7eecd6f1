#!/usr/bin/env python
"""Random-weight PaliGemma checkpoints at the REAL shapes (the one builder: used by
tools/fullsize_check.py and bench/).

Variants (name -> directory name under --work, as fullsize_check uses them):

  pg1, pg1-448, pg1-896          PaliGemma 1 3B (Gemma 2B)      at 224 / 448 / 896 px
  pg2, pg2-448, pg2-896          PaliGemma 2 3B (Gemma 2 2B)    at 224 / 448 / 896 px
  pg2-10b, pg2-10b-448, -896     PaliGemma 2 10B (Gemma 2 9B)
  pg2-28b, pg2-28b-448, -896     PaliGemma 2 28B (Gemma 2 27B)

(`pg1-224`, `pg2-3b-448`, ... are accepted as aliases.)  Shapes are those of the
released config.json files (../shared/reference/paligemma.md): SigLIP So400m/14
(1152 wide, 27 layers, MLP 4304), N = (res / 14)^2 = 256 / 1024 / 4096 image tokens
and a position embedding of N rows, vocabulary 257216, tied embedding (no lm_head).

Output: config.json in the style of the released file, tokenizer.model (the fixture
tokenizer), bf16 safetensors shards of <= --shard-gb (one tensor larger than that,
e.g. 28B's 2.37 GB embedding, gets a shard of its own) + model.safetensors.index.json,
in the released (OLD, `language_model.model.*`) tensor layout or --layout new.
Random weights with the O(1)-activation scheme of tools/golden/make_models.py.

Streaming: the shard plan (names, shapes, offsets) is computed first, then each tensor
is generated, written at its offset and freed, so memory stays at one tensor in f32
(<= 4.7 GB, 28B's embedding) whatever the model size.  Free disk space is checked
before anything is written.

Usage:
  .venv-golden/bin/python tools/make_fullsize.py --models pg2-448,pg2-896 [--work /tmp/pg-fullsize]
  .venv-golden/bin/python tools/make_fullsize.py --models pg2-10b,pg2-28b-896 --dry-run [--list]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "golden"))

VOCAB = 257216
IMAGE_TOKEN = 257152
TOKENIZER = REPO / "tests" / "fixtures" / "models" / "tokenizer.model"

VISION = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
              patch_size=14, image_size=224)
_GEMMA2 = dict(model_type="gemma2", head_dim=256, query_pre_attn_scalar=256, sliding_window=4096,
               attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
# Decoders of the released checkpoints (config.json text_config values).
DECODERS = {
    "pg1": dict(title="PaliGemma 1 3B (Gemma 2B)", seed=1001,
                text=dict(model_type="gemma", hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                          num_attention_heads=8, num_key_value_heads=1, head_dim=256)),
    "pg2": dict(title="PaliGemma 2 3B (Gemma 2 2B)", seed=1002,
                text=dict(_GEMMA2, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                          num_attention_heads=8, num_key_value_heads=4)),
    "pg2-10b": dict(title="PaliGemma 2 10B (Gemma 2 9B)", seed=1003,
                    text=dict(_GEMMA2, hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
                              num_attention_heads=16, num_key_value_heads=8)),
    "pg2-28b": dict(title="PaliGemma 2 28B (Gemma 2 27B)", seed=1004,
                    text=dict(_GEMMA2, hidden_size=4608, intermediate_size=36864, num_hidden_layers=46,
                              num_attention_heads=32, num_key_value_heads=16, head_dim=128,
                              query_pre_attn_scalar=144)),
}
RESOLUTIONS = (224, 448, 896)


def variant_names() -> list[str]:
    return [d + ("" if r == 224 else f"-{r}") for d in DECODERS for r in RESOLUTIONS]


def canonical_name(name: str) -> str:
    """'pg2-3b-224' -> 'pg2', 'pg1-448' -> 'pg1-448', 'pg2-10b-224' -> 'pg2-10b'."""
    parts = name.lower().split("-")
    res = 224
    if parts[-1].isdigit():
        res = int(parts.pop())
    if len(parts) == 2 and parts[1] == "3b":
        parts.pop()
    base = "-".join(parts)
    if base not in DECODERS or res not in RESOLUTIONS:
        raise SystemExit(f"unknown model variant {name!r}; known: {', '.join(variant_names())}")
    return base + ("" if res == 224 else f"-{res}")


def model_spec(name: str, smoke: bool = False) -> dict:
    """{title, seed, text, vision} of a variant.  The 224 px 3B variants keep seeds
    1001 / 1002, so their tensors are those fullsize_check built before there were
    other variants.  smoke: real widths, 2 text + 2 vision layers."""
    name = canonical_name(name)
    base, res = name, 224
    if name.rsplit("-", 1)[-1].isdigit():
        base, r = name.rsplit("-", 1)
        res = int(r)
    d = json.loads(json.dumps(DECODERS[base]))
    spec = dict(name=name, title=f"{d['title']} at {res} px", seed=d["seed"] + (0 if res == 224 else res),
                text=d["text"], vision=dict(VISION, image_size=res))
    if smoke:
        spec["text"]["num_hidden_layers"] = spec["vision"]["num_hidden_layers"] = 2
        spec["title"] += " [smoke: 2+2 layers]"
    return spec


def config_json(spec: dict) -> dict:
    """config.json in the style of the released google/paligemma-3b-pt-* and
    google/paligemma2-*-pt-* files: only non-default fields.  PaliGemma 1: no head_dim
    (GemmaConfig default 256), image_size only when not the SigLIP default 224.
    The top-level hidden_size is the stale 2048 of the released files (the real
    width is text_config.hidden_size)."""
    t, V = spec["text"], spec["vision"]
    n = (V["image_size"] // V["patch_size"]) ** 2
    vision = {
        "hidden_size": V["hidden_size"], "intermediate_size": V["intermediate_size"],
        "model_type": "siglip_vision_model", "num_attention_heads": V["num_attention_heads"],
        "num_hidden_layers": V["num_hidden_layers"], "num_image_tokens": n,
        "patch_size": V["patch_size"], "projection_dim": t["hidden_size"], "vision_use_head": False,
    }
    if V["image_size"] != 224:
        vision["image_size"] = V["image_size"]
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


def nbytes(shape) -> int:
    n = 2  # bf16
    for s in shape:
        n *= s
    return n


def plan_shards(specs, shard_bytes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Tensors in order, a new shard whenever the next tensor would push the current
    one past shard_bytes (a tensor larger than shard_bytes gets a shard of its own)."""
    shards, cur, size = [], [], 0
    for k, shape in specs:
        b = nbytes(shape)
        if cur and size + b > shard_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((k, shape))
        size += b
    if cur:
        shards.append(cur)
    return shards


def _dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) if d.exists() else 0


def check_disk(d: Path, need: int) -> None:
    """Refuse (SystemExit) unless the filesystem of d has need bytes + 1 GB free,
    counting what an existing d (to be replaced) occupies as free."""
    p = d
    while not p.exists():
        p = p.parent
    free = shutil.disk_usage(p).free + _dir_bytes(d)
    margin = 1 << 30
    if free < need + margin:
        raise SystemExit(f"[build] not enough disk space for {d}: need {need / 1e9:.1f} GB + 1 GB margin, "
                         f"{free / 1e9:.1f} GB free on the filesystem of {p} (counting the old {d.name} if any)")


def _write_shard(path: Path, tensors, layout: str, spec: dict, progress) -> list[str]:
    """One safetensors file, written tensor by tensor (header first: offsets are
    known from the shapes).  Returns the stored names."""
    import torch

    names = [old_name(k) if layout == "old" else k for k, _ in tensors]
    header, off = {}, 0
    for stored, (_, shape) in zip(names, tensors):
        header[stored] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes(shape)]}
        off += nbytes(shape)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for k, shape in tensors:
            x = init_tensor(k, shape, spec["seed"], spec["text"])
            f.write(x.contiguous().view(torch.int16).numpy().data)
            del x
            progress(nbytes(shape))
    return names


def build(spec: dict, d: Path, layout: str = "old", shard_gb: float = 2.0, dry_run: bool = False,
          list_tensors: bool = False) -> None:
    """Write the checkpoint of model_spec(...) `spec` into d (replacing d)."""
    specs = tensor_specs(spec)
    shards = plan_shards(specs, int(shard_gb * 1e9))
    total = sum(nbytes(s) for _, s in specs)
    t, v = spec["text"], spec["vision"]
    log(f"[build] {spec['name']}: {spec['title']}: {len(specs)} tensors, {total // 2 / 1e9:.3f} B parameters, "
        f"{total / 1e9:.2f} GB bf16 in {len(shards)} shards; text {t['num_hidden_layers']} x {t['hidden_size']} "
        f"(MLP {t['intermediate_size']}, heads {t['num_attention_heads']}/{t['num_key_value_heads']} x "
        f"{t['head_dim']}), vision {v['image_size']} px -> {(v['image_size'] // v['patch_size']) ** 2} tokens")
    if dry_run:
        for i, sh in enumerate(shards):
            gb = sum(nbytes(s) for _, s in sh) / 1e9
            log(f"[build]   shard {i + 1}/{len(shards)}: {len(sh)} tensors, {gb:.2f} GB")
            if list_tensors:
                for k, s in sh:
                    print(f"      {old_name(k) if layout == 'old' else k:70} {list(s)}  {nbytes(s) / 1e6:.1f} MB")
        log(f"[build] {spec['name']}: dry run, nothing written (would go to {d})")
        return
    check_disk(d, total)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config_json(spec), indent=2) + "\n")
    shutil.copy(TOKENIZER, d / "tokenizer.model")
    t0, done, last = time.time(), [0], [0.0]

    def progress(b: int) -> None:
        done[0] += b
        if time.time() - last[0] > 15 or done[0] == total:
            last[0] = time.time()
            log(f"[build]   {done[0] / 1e9:.2f} / {total / 1e9:.2f} GB ({time.time() - t0:.0f} s)")

    weight_map, n = {}, len(shards)
    for i, sh in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        tmp = d / (fname + ".part")
        names = _write_shard(tmp, sh, layout, spec, progress)
        os.replace(tmp, d / fname)
        weight_map.update({k: fname for k in names})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    log(f"[build] {spec['name']}: wrote {n} shards to {d} in {time.time() - t0:.0f} s")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/pg-fullsize", type=Path, help="checkpoints go to WORK/<variant>/model")
    ap.add_argument("--models", default="pg2-448", help="comma-separated variants: " + ", ".join(variant_names()))
    ap.add_argument("--layout", default="old", choices=["old", "new"])
    ap.add_argument("--shard-gb", default=2.0, type=float, help="maximum shard size in GB (1e9 bytes)")
    ap.add_argument("--smoke", action="store_true", help="real widths, 2 text + 2 vision layers")
    ap.add_argument("--dry-run", action="store_true", help="print shapes, sizes and the shard plan; write nothing")
    ap.add_argument("--list", action="store_true", help="with --dry-run: every tensor's name, shape and size")
    a = ap.parse_args()
    for name in a.models.split(","):
        spec = model_spec(name, a.smoke)
        build(spec, a.work / (spec["name"] + ("-smoke" if a.smoke else "")) / "model", a.layout, a.shard_gb,
              a.dry_run, a.list)
    return 0


if __name__ == "__main__":
    sys.exit(main())
