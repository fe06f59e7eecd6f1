#!/usr/bin/env python
"""Build the tiny random-weight PaliGemma fixture checkpoints under tests/fixtures/models/.

Every model is built with transformers' own classes (PaliGemmaConfig,
PaliGemmaForConditionalGeneration, SiglipVisionConfig, GemmaConfig/Gemma2Config).
The weights are NOT HF's default init (std 0.02 gives logits ~ 0): each tensor is
drawn from a seeded generator with a scale that gives O(1) activations and
O(1..10) logits, norm weights and biases are random too, and every value is
rounded to the storage dtype (bf16 / f16; bf16-representable values for the f32
model) before saving, so the stored tensors are exact and the f32 reference runs
on exactly the same numbers.  The embedding rows of the '<unusedN>' filler ids
(and the matching lm_head rows, where there is one) are exactly zero, which
makes them compress to nothing in git; all other rows are random.

After writing each folder the script reloads it with
PaliGemmaForConditionalGeneration.from_pretrained and checks that every
parameter equals the in-memory model it was generated from (this checks the
old/new tensor-name layouts, the sharded index and the minimal config).

Usage: .venv-golden/bin/python tools/golden/make_models.py [names...]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    IMAGE_TOKEN_ID, MODEL_VOCAB, MODELS_DIR, TEXT_VOCAB, filler_range, log, set_threads,
)

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# name -> spec.  `text` holds the text_config kwargs, `vision` the vision_config kwargs.
SPECS: dict[str, dict] = {
    # A: PaliGemma 1 (Gemma), MQA, f32, single file, OLD tensor layout, minimal
    #    config.json in the style of google/paligemma-3b-pt-224 (no head_dim ->
    #    GemmaConfig default 256, which is != hidden/heads here).
    "pg1_mqa": dict(
        seed=101, store="float32", layout="old", shards=1, minimal_config=True,
        text=dict(model_type="gemma", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1),
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                    image_size=56, patch_size=14),
    ),
    # B: PaliGemma 2 (Gemma 2), GQA 4/2, soft-caps 50/30, sliding window 8 (< prompt),
    #    bf16, NEW layout, 2 shards + index.
    "pg2_gqa_window": dict(
        seed=202, store="bfloat16", layout="new", shards=2,
        text=dict(model_type="gemma2", hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                  attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=8),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=56, patch_size=14),
        qk_gain=1.5,
    ),
    # C: Gemma 2 with head_dim (16) != query_pre_attn_scalar (24) and != hidden/heads,
    #    MHA (4/4), 3 layers, f16 weights, 70 px (25 image tokens), OLD layout
    #    (as the released PaliGemma 2 checkpoints use).
    "pg2_qpas": dict(
        seed=303, store="float16", layout="old", shards=1,
        text=dict(model_type="gemma2", hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=4, head_dim=16, query_pre_attn_scalar=24,
                  attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=4096),
        vision=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=3,
                    image_size=70, patch_size=14),
    ),
    # D: two images per prompt (9 + 9 image tokens), Gemma 2, bf16, NEW layout,
    #    sliding window 16 (< prompt).
    "pg2_two_images": dict(
        seed=404, store="bfloat16", layout="new", shards=1,
        text=dict(model_type="gemma2", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                  attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=16),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                    image_size=42, patch_size=14),
        images_per_prompt=2,
    ),
    # E: Gemma 1 with an explicit, untied lm_head tensor (tie_word_embeddings false),
    #    bf16, NEW layout, GQA 4/2, 42 px.  Its lm_head row for <eos> is planted so
    #    that greedy decoding of (coffee.png, "caption en") emits <eos> as its 6th
    #    token: the golden record then covers stopping on eos.
    "pg1_untied_lm_head": dict(
        seed=505, store="bfloat16", layout="new", shards=1, untied=True,
        plant_eos=dict(photo="coffee.png", prompt="caption en", steps=(5, 6, 4, 7, 3, 8)),
        text=dict(model_type="gemma", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8),
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                    image_size=42, patch_size=14),
    ),
}


def build_config(spec: dict):
    from transformers import Gemma2Config, GemmaConfig, PaliGemmaConfig, SiglipVisionConfig

    t = dict(spec["text"])
    mt = t.pop("model_type")
    hidden = t["hidden_size"]
    untied = spec.get("untied", False)
    tcls = GemmaConfig if mt == "gemma" else Gemma2Config
    text = tcls(vocab_size=MODEL_VOCAB, tie_word_embeddings=not untied, **t)
    v = dict(spec["vision"])
    vision = SiglipVisionConfig(vision_use_head=False, projection_dim=hidden, **v)
    v_tokens = (v["image_size"] // v["patch_size"]) ** 2
    text.num_image_tokens = v_tokens
    vision.num_image_tokens = v_tokens
    cfg = PaliGemmaConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(),
        image_token_index=IMAGE_TOKEN_ID, vocab_size=MODEL_VOCAB, projection_dim=hidden,
        hidden_size=hidden, tie_word_embeddings=not untied,
        bos_token_id=2, eos_token_id=1, pad_token_id=0,
    )
    return cfg


def minimal_config_json(spec: dict) -> dict:
    """config.json in the minimal style of google/paligemma-3b-pt-224 (written by
    transformers 4.41): only the non-default fields.  Notably no `head_dim` in
    text_config (GemmaConfig default 256) and no `image_size` in vision_config
    when it equals the SiglipVisionConfig default (224)."""
    t, v = spec["text"], spec["vision"]
    n = (v["image_size"] // v["patch_size"]) ** 2
    text = {
        "hidden_size": t["hidden_size"],
        "intermediate_size": t["intermediate_size"],
        "model_type": "gemma",
        "num_attention_heads": t["num_attention_heads"],
        "num_hidden_layers": t["num_hidden_layers"],
        "num_image_tokens": n,
        "num_key_value_heads": t["num_key_value_heads"],
        "torch_dtype": "float32",
        "vocab_size": MODEL_VOCAB,
    }
    vision = {
        "hidden_size": v["hidden_size"],
        "intermediate_size": v["intermediate_size"],
        "model_type": "siglip_vision_model",
        "num_attention_heads": v["num_attention_heads"],
        "num_hidden_layers": v["num_hidden_layers"],
        "num_image_tokens": n,
        "patch_size": v["patch_size"],
        "projection_dim": t["hidden_size"],
        "projector_hidden_act": "gelu_fast",
        "vision_use_head": False,
    }
    if v["image_size"] != 224:
        vision["image_size"] = v["image_size"]
    vision = dict(sorted(vision.items()))
    return {
        "_name_or_path": "final_hf_model",
        "architectures": ["PaliGemmaForConditionalGeneration"],
        "bos_token_id": 2,
        "eos_token_id": 1,
        "hidden_size": t["hidden_size"],
        "ignore_index": -100,
        "image_token_index": IMAGE_TOKEN_ID,
        "model_type": "paligemma",
        "pad_token_id": 0,
        "projection_dim": t["hidden_size"],
        "text_config": text,
        "torch_dtype": "float32",
        "transformers_version": "4.41.0.dev0",
        "vision_config": vision,
    }


def _std_for(name: str, shape: tuple[int, ...], spec: dict) -> tuple[float, float]:
    """(mean, std) of the random init for one tensor."""
    qk_gain = spec.get("qk_gain", 1.5)
    if name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight"):
        return 0.0, spec.get("embed_std", 0.35)
    if "position_embedding" in name:
        return 0.0, 0.5
    if "patch_embedding.weight" in name:
        fan_in = shape[1] * shape[2] * shape[3]
        return 0.0, 1.5 / fan_in ** 0.5
    is_vision = "vision" in name
    if "norm" in name and name.endswith(".weight"):
        # Gemma RMSNorm stores w and multiplies by (1 + w); SigLIP LayerNorm multiplies by w.
        if is_vision:
            return 1.0, 0.25
        if "post_attention_layernorm" in name or "post_feedforward_layernorm" in name:
            # Gemma 2 post-norms: scale the block outputs up to the size of the
            # residual stream (embeddings * sqrt(hidden)) so that the layers matter
            return spec.get("post_norm_mean", 2.0), 0.3
        if name.endswith("language_model.norm.weight"):
            # final norm: (1 + w) ~ 2.5 brings the tied-embedding logits to O(1..10)
            return spec.get("final_norm_mean", 1.0), 0.3
        return 0.0, 0.3
    if name.endswith(".bias"):
        return 0.0, 0.2
    if name.endswith(".weight") and len(shape) == 2:
        fan_in = shape[1]
        gain = 1.0
        if any(k in name for k in ("q_proj", "k_proj")):
            gain = spec.get("vision_qk_gain", 1.0) if is_vision else qk_gain
        elif any(k in name for k in ("fc1", "gate_proj", "up_proj")):
            gain = 1.5
        elif not is_vision and any(k in name for k in ("o_proj", "down_proj")):
            gain = spec.get("out_gain", 3.0)
        return 0.0, gain / fan_in ** 0.5
    raise ValueError(f"no init rule for {name} {shape}")


def randomise(model, spec: dict, filler: tuple[int, int]) -> None:
    store = DTYPES[spec["store"]]
    seed = spec["seed"]
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(remove_duplicate=True)):
            g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
            mean, std = _std_for(name, tuple(p.shape), spec)
            x = torch.randn(tuple(p.shape), generator=g, dtype=torch.float32) * std + mean
            if name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight"):
                x[filler[0]:filler[1]] = 0.0
            # round to the storage dtype so that the stored values are exact
            p.copy_(x.to(store).to(torch.float32))


def plant_eos(model, spec: dict) -> None:
    """Set lm_head[<eos>] = a * h_k (h_k: final normed hidden state that predicts
    greedy token k) so that greedy decoding stops on <eos> at step k.  Only for an
    untied lm_head (the input embedding of <eos> is unchanged)."""
    from hf_utils import make_processor
    from transformers.image_utils import load_image
    from common import EOS_ID, PHOTOS_DIR

    pe = spec["plant_eos"]
    store = DTYPES[spec["store"]]
    v = spec["vision"]
    proc = make_processor(v["image_size"], v["patch_size"])
    inputs = proc(images=load_image(str(PHOTOS_DIR / pe["photo"])), text=pe["prompt"], return_tensors="pt")
    L = inputs["input_ids"].shape[1]
    lm = model.lm_head.weight
    with torch.no_grad():
        lm[EOS_ID] = -lm[EOS_ID].abs().mean() * 0  # start from a zero row: eos logit 0
        for k in pe["steps"]:
            g = model.generate(**inputs, do_sample=False, max_new_tokens=k + 1, eos_token_id=None,
                               output_hidden_states=True, return_dict_in_generate=True,
                               top_k=None, top_p=None, temperature=None)
            # final normed hidden state that predicts token k: run the LM on prompt + gen[:k]
            ids = g.sequences[:, : L + k]
            tt = torch.cat([inputs["token_type_ids"], torch.ones(1, k, dtype=torch.long)], 1)
            out = model.model(input_ids=ids, pixel_values=inputs["pixel_values"], token_type_ids=tt,
                              attention_mask=torch.ones_like(ids))
            h = out.last_hidden_state[0]             # [L+k, hidden], after the final norm
            logits = h @ lm.T
            best = logits[-1].max()
            row = h[-1] * ((best + 3.0) / h[-1].pow(2).sum())
            lm[EOS_ID] = row.to(store).to(torch.float32)
            e = (h @ lm[EOS_ID])
            others = (h @ lm.T)
            others[:, EOS_ID] = -1e9
            # eos must win exactly at the row predicting token k and lose on the rows before
            wins = e[L - 1:] > others[L - 1:].max(-1).values
            if wins[-1] and not wins[:-1].any():
                g2 = model.generate(**inputs, do_sample=False, max_new_tokens=k + 4,
                                    top_k=None, top_p=None, temperature=None)
                new = g2[0, L:].tolist()
                if len(new) == k + 1 and new[-1] == EOS_ID:
                    log(f"[models] planted <eos>: greedy stops after {k + 1} tokens: {new}")
                    return
            lm[EOS_ID] = 0.0
    raise RuntimeError("could not plant <eos>")


def to_layout(sd: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """New (transformers >= 4.52 / 5.x) names are model.language_model.*,
    model.vision_tower.*, model.multi_modal_projector.*, lm_head.*; the OLD layout
    (released checkpoints) is language_model.model.*, language_model.lm_head.*,
    vision_tower.vision_model.*, multi_modal_projector.*."""
    out = {}
    for k, v in sd.items():
        if layout == "old":
            if k.startswith("model.language_model."):
                k = "language_model.model." + k[len("model.language_model."):]
            elif k.startswith("lm_head."):
                k = "language_model." + k
            elif k.startswith("model.vision_tower."):
                # released checkpoints nest the SigLIP tower under vision_model.
                k = "vision_tower.vision_model." + k[len("model.vision_tower."):]
            elif k.startswith("model."):
                k = k[len("model."):]
        out[k] = v
    return out


def write_model(name: str, spec: dict, filler: tuple[int, int]) -> Path:
    from transformers import PaliGemmaForConditionalGeneration

    out = MODELS_DIR / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cfg = build_config(spec)
    torch.manual_seed(spec["seed"])
    model = PaliGemmaForConditionalGeneration(cfg).eval().to(torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    randomise(model, spec, filler)
    untied = spec.get("untied", False)
    if spec.get("plant_eos"):
        plant_eos(model, spec)

    sd = model.state_dict()
    if not untied:
        sd.pop("lm_head.weight")  # tied: not stored, as in the released checkpoints
    store = DTYPES[spec["store"]]
    sd = {k: v.detach().to(store).contiguous().clone() for k, v in sorted(sd.items())}
    sd = to_layout(sd, spec["layout"])

    # config.json
    if spec.get("minimal_config"):
        (out / "config.json").write_text(json.dumps(minimal_config_json(spec), indent=2) + "\n")
    else:
        cfg.dtype = spec["store"]  # recorded in config.json as save_pretrained does
        cfg.text_config.dtype = spec["store"]
        cfg.save_pretrained(out)

    # safetensors (one file, or N shards + index)
    keys = sorted(sd)
    n = spec.get("shards", 1)
    meta = {"format": "pt"}
    if n == 1:
        save_file(sd, str(out / "model.safetensors"), metadata=meta)
    else:
        # split keys into n groups of roughly equal byte size, keeping order
        sizes = [sd[k].numel() * sd[k].element_size() for k in keys]
        total, target = sum(sizes), sum(sizes) / n
        groups, cur, acc = [], [], 0
        for k, s in zip(keys, sizes):
            cur.append(k)
            acc += s
            if acc >= target * (len(groups) + 1) and len(groups) < n - 1:
                groups.append(cur)
                cur = []
        groups.append(cur)
        # the embedding alone can exceed the target: make sure every shard has tensors
        groups = [g for g in groups if g]
        while len(groups) < n:
            big = max(range(len(groups)), key=lambda i: len(groups[i]))
            g = groups.pop(big)
            groups[big:big] = [g[: len(g) // 2], g[len(g) // 2:]]
        weight_map = {}
        for i, g in enumerate(groups):
            fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
            save_file({k: sd[k] for k in g}, str(out / fname), metadata=meta)
            weight_map.update({k: fname for k in g})
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")

    os.symlink("../tokenizer.model", out / "tokenizer.model")
    verify_reload(out, model)
    return out


def verify_reload(path: Path, ref_model) -> None:
    from transformers import PaliGemmaForConditionalGeneration

    m = PaliGemmaForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    ref = dict(ref_model.named_parameters())
    got = dict(m.named_parameters())
    assert ref.keys() == got.keys(), (ref.keys() ^ got.keys())
    for k in ref:
        assert ref[k].dtype == got[k].dtype == torch.float32
        assert torch.equal(ref[k], got[k]), f"{path.name}: {k} differs after reload"
    # tying as expected
    tied = m.lm_head.weight.data_ptr() == m.model.language_model.embed_tokens.weight.data_ptr()
    assert tied == (not (ref_model.config.tie_word_embeddings is False)), (path.name, tied)
    # same effective configuration
    a, b = ref_model.config.text_config, m.config.text_config
    for f in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps", "model_type"):
        assert getattr(a, f) == getattr(b, f), (path.name, f, getattr(a, f), getattr(b, f))
    va, vb = ref_model.config.vision_config, m.config.vision_config
    for f in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "image_size", "patch_size", "layer_norm_eps", "hidden_act", "vision_use_head"):
        assert getattr(va, f) == getattr(vb, f), (path.name, f, getattr(va, f), getattr(vb, f))
    assert m.config.image_token_index == IMAGE_TOKEN_ID
    log(f"[models] {path.name}: reloaded with from_pretrained, {len(ref)} parameters identical, "
        f"tied lm_head={tied}")


def main(names: list[str]) -> None:
    set_threads()
    filler = filler_range()
    assert filler[1] == TEXT_VOCAB
    for name in names or list(SPECS):
        log(f"[models] building {name} ...")
        p = write_model(name, SPECS[name], filler)
        size = sum(f.stat().st_size for f in p.iterdir() if f.is_file() and not f.is_symlink())
        log(f"[models] wrote {p} ({size / 1e6:.1f} MB on disk)")


if __name__ == "__main__":
    main(sys.argv[1:])
