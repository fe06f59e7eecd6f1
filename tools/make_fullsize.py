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

--format int8|q4 (default bf16) writes the quantised layout of docs/QUANTIZATION.md
(format v1, as `paligemma quantize` writes it) directly, with random contents, so that
checkpoints too large to exist in bf16 on this disk (28B: 55 GB) can be built and run:
the same tensors are quantised (vision linears + projector, text linears, embedding;
--vision-format / --embedding-format override those groups), the same safetensors
__metadata__, tensor order, shard naming, index and quantization.json are written.
int8: q uniform in [-127, 127], per-row scale std / sqrt(E[q^2]); q4: random nibbles
0..15, f16 block scales of magnitude std / sqrt(E[(n - 8)^2]) with random signs (zero
mean), padding nibbles 8; std from the same _std_for rule as bf16; the embedding's filler
rows are zero (scale 0).  Output directory: WORK/<variant>-<format>/model.

Streaming: the shard plan (names, shapes, offsets) is computed first, then each tensor
is generated, written at its offset and freed, so memory stays at one tensor in f32
(<= 4.7 GB, 28B's embedding) whatever the model size.  Free disk space is checked
before anything is written.

Usage:
  .venv-golden/bin/python tools/make_fullsize.py --models pg2-448,pg2-896 [--work /tmp/pg-fullsize]
  .venv-golden/bin/python tools/make_fullsize.py --models pg2-10b,pg2-28b-896 --dry-run [--list]
  .venv-golden/bin/python tools/make_fullsize.py --models pg2-10b --format int8
  .venv-golden/bin/python tools/make_fullsize.py --models pg2-28b --format q4
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


def init_mean_std(name: str, shape, text: dict) -> tuple[float, float]:
    """(mean, std) of a tensor's random init (tools/golden/make_models.py's rule)."""
    from make_models import _std_for

    spec = {"qk_gain": 1.5, "embed_std": 2.0 / text["hidden_size"] ** 0.5,
            "post_norm_mean": 2.0 if text["model_type"] == "gemma2" else 0.0}
    return _std_for(name, tuple(shape), spec)


def init_tensor(name: str, shape, seed: int, text: dict):
    """Same O(1)-activation scheme as tools/golden/make_models.py, with the
    embedding std scaled to the width (logits std ~ 4 at any hidden size)."""
    import torch

    mean, std = init_mean_std(name, shape, text)
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
    t0 = time.time()
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
    progress = byte_progress(total)

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


# ---- quantised checkpoints (docs/QUANTIZATION.md, format v1) ------------------------------

QUANT_FORMAT = "paligemma.cpp-quantized"
QUANT_VERSION = 1
Q4_BLOCK, Q4_BLOCK_BYTES = 32, 16
FORMATS = ("bf16", "int8", "q4")
_DTYPE_RANK = {"F32": 0, "BF16": 1, "F16": 2, "I8": 3, "U8": 4}  # the writer's order in a shard
# E[q^2] of the random codes: int8 uniform on [-127, 127]; q4 (nibble - 8), nibble uniform on 0..15.
_INT8_MS = (255 ** 2 - 1) / 12
_Q4_MS = (16 ** 2 - 1) / 12 + 0.25


def q4_blocks(cols: int) -> int:
    return (cols + Q4_BLOCK - 1) // Q4_BLOCK


def quant_group(canonical: str, shape) -> str | None:
    """The `paligemma quantize` option (vision / text / embedding) that decides a tensor's
    type, or None: src/io/quantized_writer.cpp group_of on canonical (OLD layout) names."""
    if len(shape) != 2 or not canonical.endswith(".weight"):
        return None
    if canonical.startswith("vision_tower.vision_model.encoder.layers.") and (
            ".self_attn." in canonical or ".mlp." in canonical):
        return "vision"
    if canonical == "multi_modal_projector.linear.weight":
        return "vision"
    if canonical.startswith("language_model.model.layers.") and (
            ".self_attn." in canonical or ".mlp." in canonical):
        return "text"
    if canonical in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        return "embedding"
    return None


def quant_outputs(stored: str, shape, fmt: str) -> list[tuple[str, str, list[int], int]]:
    """(name, dtype, shape, bytes) of the stored tensor(s) of one source tensor."""
    if fmt == "bf16":
        return [(stored, "BF16", list(shape), nbytes(shape))]
    rows, cols = shape
    if fmt == "int8":
        return [(stored, "I8", [rows, cols], rows * cols), (stored + ".q_scale", "F32", [rows], rows * 4)]
    nb = q4_blocks(cols)
    return [(stored, "U8", [rows, nb * Q4_BLOCK_BYTES], rows * nb * Q4_BLOCK_BYTES),
            (stored + ".q_scale", "F16", [rows, nb], rows * nb * 2)]


def random_quantized_rows(fmt: str, name: str, shape, seed: int, text: dict, chunk_bytes: int = 64 << 20):
    """The random int8 / q4 contents of one matrix, in row chunks: yields (row0, data, scales)
    as numpy arrays in the stored layout (int8 [n, cols] + f32 [n]; u8 [n, 16 * blocks] +
    f16 [n, blocks]).  Element std = the bf16 builder's std for the tensor, mean 0."""
    import numpy as np

    rows, cols = shape
    _, std = init_mean_std(name, shape, text)
    zero = (0, 0)
    if name.endswith("embed_tokens.weight"):
        from common import filler_range

        zero = filler_range()
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    row_bytes = cols if fmt == "int8" else q4_blocks(cols) * Q4_BLOCK_BYTES
    step = max(1, chunk_bytes // row_bytes)
    for r0 in range(0, rows, step):
        n = min(step, rows - r0)
        z0, z1 = max(zero[0] - r0, 0), min(zero[1] - r0, n)  # filler rows inside this chunk
        if fmt == "int8":
            q = rng.integers(-127, 128, size=(n, cols), dtype=np.int8)
            sc = np.full(n, std / _INT8_MS ** 0.5, dtype=np.float32)
            if z1 > z0:
                q[z0:z1] = 0
                sc[z0:z1] = 0
        else:
            nb = q4_blocks(cols)
            q = rng.integers(0, 256, size=(n, nb * Q4_BLOCK_BYTES), dtype=np.uint8)
            pad = nb * Q4_BLOCK - cols
            if pad:  # elements valid..31 of the last block are nibble 8 (zero)
                valid = Q4_BLOCK - pad
                last = q[:, (nb - 1) * Q4_BLOCK_BYTES:]
                for e in range(valid, Q4_BLOCK):
                    if e < 16:
                        last[:, e] = (last[:, e] & 0xF0) | 0x08
                    else:
                        last[:, e - 16] = (last[:, e - 16] & 0x0F) | 0x80
            sign = rng.integers(0, 2, size=(n, nb), dtype=np.int8) * 2 - 1
            sc = (sign * np.float32(std / _Q4_MS ** 0.5)).astype(np.float16)
            if z1 > z0:
                q[z0:z1] = 0x88
                sc[z0:z1] = 0
        yield r0, q, sc


def build_quantized(spec: dict, d: Path, formats: dict, layout: str = "old", shard_gb: float = 4.0,
                    dry_run: bool = False, list_tensors: bool = False) -> None:
    """Write spec's checkpoint into d in the layout `paligemma quantize` writes, with
    formats = {"vision": f, "text": f, "embedding": f} (f in FORMATS)."""
    specs = tensor_specs(spec)
    t, v = spec["text"], spec["vision"]
    # Jobs in canonical-name order, as the writer walks Checkpoint::names().
    jobs = []
    for k, shape in sorted(specs, key=lambda ks: old_name(ks[0])):
        canonical = old_name(k)
        g = quant_group(canonical, shape)
        fmt = formats[g] if g else "bf16"
        stored = canonical if layout == "old" else k
        outs = quant_outputs(stored, shape, fmt)
        jobs.append(dict(name=k, shape=shape, fmt=fmt, outs=outs, bytes=sum(o[3] for o in outs)))
    # Shards: a new one when the next job would push the current past the limit.
    max_bytes = max(1, int(shard_gb * 1e9))
    shards, cur, size = [], [], 0
    for j in jobs:
        if cur and size + j["bytes"] > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(j)
        size += j["bytes"]
    shards.append(cur)
    n = len(shards)
    choice = dict(formats)  # a kept group: its stored dtype in lower case, as the writer names it
    meta = {"format": "pt", "paligemma.quantized.format": QUANT_FORMAT,
            "paligemma.quantized.version": str(QUANT_VERSION), "paligemma.quantized.text": choice["text"],
            "paligemma.quantized.vision": choice["vision"], "paligemma.quantized.embedding": choice["embedding"]}
    plans, weight_map, total = [], {}, 0
    for si, sh in enumerate(shards):
        fname = "model.safetensors" if n == 1 else f"model-{si + 1:05d}-of-{n:05d}.safetensors"
        outs = sorted((o for j in sh for o in j["outs"]), key=lambda o: (_DTYPE_RANK[o[1]], o[0]))
        header, off, offsets = {"__metadata__": meta}, 0, {}
        for name, dtype, shape, b in outs:
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + b]}
            offsets[name] = off
            off += b
            weight_map[name] = fname
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        prefix = struct.pack("<Q", len(h)) + h
        plans.append(dict(file=fname, jobs=sh, prefix=prefix, offsets={k: o + len(prefix) for k, o in offsets.items()},
                          data_bytes=off))
        total += off
    counts: dict[str, list[int]] = {}
    for j in jobs:
        key = "BF16" if j["fmt"] == "bf16" else j["fmt"]
        c = counts.setdefault(key, [0, 0])
        c[0] += 1
        c[1] += j["bytes"]
    source_bytes = sum(nbytes(s) for _, s in specs)
    log(f"[build] {spec['name']}: {spec['title']}: text {choice['text']}, vision {choice['vision']}, embedding "
        f"{choice['embedding']}: {len(specs)} source tensors, {source_bytes // 2 / 1e9:.3f} B parameters, "
        f"{total / 1e9:.2f} GB in {n} shards (bf16 would be {source_bytes / 1e9:.2f} GB); text "
        f"{t['num_hidden_layers']} x {t['hidden_size']}, vision {v['image_size']} px")
    if dry_run:
        for p in plans:
            log(f"[build]   {p['file']}: {len(p['jobs'])} source tensors, {p['data_bytes'] / 1e9:.2f} GB")
            if list_tensors:
                for j in p["jobs"]:
                    for name, dtype, shape, b in j["outs"]:
                        print(f"      {name:78} {dtype:4} {shape}  {b / 1e6:.1f} MB")
        log(f"[build] {spec['name']}: dry run, nothing written (would go to {d})")
        return
    check_disk(d, total + sum(len(p["prefix"]) for p in plans))
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    progress = byte_progress(total)

    import torch

    for p in plans:
        tmp = d / (p["file"] + ".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.pwrite(fd, p["prefix"], 0)
            for j in p["jobs"]:
                (dname, _, _, dbytes) = j["outs"][0]
                if j["fmt"] == "bf16":
                    x = init_tensor(j["name"], j["shape"], spec["seed"], spec["text"])
                    os.pwrite(fd, x.contiguous().view(torch.int16).numpy().tobytes(), p["offsets"][dname])
                    del x
                    progress(dbytes)
                    continue
                sname = j["outs"][1][0]
                for r0, q, sc in random_quantized_rows(j["fmt"], j["name"], j["shape"], spec["seed"], spec["text"]):
                    os.pwrite(fd, q.tobytes(), p["offsets"][dname] + r0 * q.shape[1] * q.itemsize)
                    os.pwrite(fd, sc.tobytes(), p["offsets"][sname] + r0 * sc[0].nbytes)
                    progress(q.nbytes + sc.nbytes)
        finally:
            os.close(fd)
    if n > 1:
        index = {"metadata": {"total_size": total, "paligemma.quantized.format": QUANT_FORMAT,
                              "paligemma.quantized.version": str(QUANT_VERSION)},
                 "weight_map": dict(sorted(weight_map.items()))}
        (d / "model.safetensors.index.json.part").write_text(json.dumps(index, indent=2) + "\n")
    (d / "config.json").write_text(json.dumps(config_json(spec), indent=2) + "\n")
    shutil.copy(TOKENIZER, d / "tokenizer.model")
    manifest = {"format": QUANT_FORMAT, "version": QUANT_VERSION, "text": choice["text"], "vision": choice["vision"],
                "embedding": choice["embedding"],
                "source": f"random weights: tools/make_fullsize.py {spec['name']} (seed {spec['seed']})",
                "q4_block_size": Q4_BLOCK, "shards": n, "total_bytes": total, "source_bytes": source_bytes,
                "tensors": {k: {"tensors": c[0], "bytes": c[1]} for k, c in sorted(counts.items())}}
    (d / "quantization.json.part").write_text(json.dumps(manifest, indent=2) + "\n")
    for p in plans:
        os.replace(d / (p["file"] + ".part"), d / p["file"])
    if n > 1:
        os.replace(d / "model.safetensors.index.json.part", d / "model.safetensors.index.json")
    os.replace(d / "quantization.json.part", d / "quantization.json")  # last: marks the output complete
    log(f"[build] {spec['name']}: wrote {n} shards ({total / 1e9:.2f} GB) to {d} in {time.time() - t0:.0f} s")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def byte_progress(total: int):
    """A callback counting written bytes, logging every 15 s and at the end."""
    t0, done, last = time.time(), [0], [0.0]

    def progress(b: int) -> None:
        done[0] += b
        if time.time() - last[0] > 15 or done[0] == total:
            last[0] = time.time()
            log(f"[build]   {done[0] / 1e9:.2f} / {total / 1e9:.2f} GB ({time.time() - t0:.0f} s)")

    return progress


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/pg-fullsize", type=Path, help="checkpoints go to WORK/<variant>[-<format>]/model")
    ap.add_argument("--models", default="pg2-448", help="comma-separated variants: " + ", ".join(variant_names()))
    ap.add_argument("--layout", default="old", choices=["old", "new"])
    ap.add_argument("--shard-gb", default=None, type=float,
                    help="maximum shard size in GB (1e9 bytes); default 2 (bf16) / 4 (quantised, as paligemma quantize)")
    ap.add_argument("--format", default="bf16", choices=FORMATS,
                    help="bf16, or write the int8 / q4 layout of `paligemma quantize` directly")
    ap.add_argument("--vision-format", choices=FORMATS, help="SigLIP linears + projector (default: --format)")
    ap.add_argument("--embedding-format", choices=FORMATS, help="token embedding (default: --format)")
    ap.add_argument("--smoke", action="store_true", help="real widths, 2 text + 2 vision layers")
    ap.add_argument("--dry-run", action="store_true", help="print shapes, sizes and the shard plan; write nothing")
    ap.add_argument("--list", action="store_true", help="with --dry-run: every tensor's name, shape and size")
    a = ap.parse_args()
    formats = {"text": a.format, "vision": a.vision_format or a.format,
               "embedding": a.embedding_format or a.format}
    quantized = any(f != "bf16" for f in formats.values())
    suffix = ""
    if quantized:
        suffix = "-" + a.format
        suffix += "".join(f"-{g[0]}{formats[g]}" for g in ("vision", "embedding") if formats[g] != a.format)
    for name in a.models.split(","):
        spec = model_spec(name, a.smoke)
        d = a.work / (spec["name"] + suffix + ("-smoke" if a.smoke else "")) / "model"
        if quantized:
            build_quantized(spec, d, formats, a.layout, 4.0 if a.shard_gb is None else a.shard_gb, a.dry_run, a.list)
        else:
            build(spec, d, a.layout, 2.0 if a.shard_gb is None else a.shard_gb, a.dry_run, a.list)
    return 0


if __name__ == "__main__":
    sys.exit(main())
