#!/usr/bin/env python
"""Establish the reference semantics of transformers' PaliGemma empirically, on the
fixture models, and write tools/golden/semantics_report.json (README.md section
"Reference semantics" quotes it).

1. Instruments the eager attention of Gemma / Gemma 2 and records the additive
   mask and key length every layer sees, in prefill and in each decode step of
   generate() (sliding-window model pg2_gqa_window, window 8 < prompt).
2. Rebuilds the logits of prefill + every decode step with OUR statement of the
   mask rule (fed straight into the language model as a per-layer-type mask) and
   checks that it reproduces HF; then measures how far the plausible wrong rules
   are (window also on the prompt block, no window, causal prompt).
3. Measures the effect size of the other semantic switches (final soft-cap,
   attention soft-cap, 0-based positions, image features x sqrt(hidden), query
   scale, bf16 normaliser) so that the test tolerance is shown to separate them.

Usage: .venv-golden/bin/python tools/golden/semantics_check.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GOLDEN_DIR, IMAGE_TOKEN_ID, MODELS_DIR, PHOTOS_DIR, log, set_threads  # noqa: E402
from hf_utils import make_processor  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPORT = Path(__file__).resolve().parent / "semantics_report.json"


def load(name):
    from transformers import PaliGemmaForConditionalGeneration

    return PaliGemmaForConditionalGeneration.from_pretrained(
        MODELS_DIR / name, dtype=torch.float32, attn_implementation="eager").eval()


def case_inputs(model, name, case):
    from transformers.image_utils import load_image

    meta = json.loads((GOLDEN_DIR / name / case / "meta.json").read_text())
    vc = model.config.vision_config
    proc = make_processor(vc.image_size, vc.patch_size)
    imgs = [load_image(str(PHOTOS_DIR / p)) for p in meta["images"]]
    inputs = proc(images=[imgs] if len(imgs) > 1 else imgs[0], text=meta["prompt"], return_tensors="pt")
    return inputs, meta, proc


# ---------------------------------------------------------------- 1. mask dump
def record_masks(model, inputs, max_new_tokens):
    import transformers.models.gemma.modeling_gemma as mg
    import transformers.models.gemma2.modeling_gemma2 as mg2

    calls = []
    originals = {}
    for mod in (mg, mg2):
        orig = mod.eager_attention_forward
        originals[mod] = orig

        def wrapped(module, query, key, value, attention_mask, *a, _orig=orig, **kw):
            vis = None if attention_mask is None else (attention_mask[0, 0] == 0)
            calls.append({"layer": module.layer_idx, "q_len": query.shape[2], "kv_len": key.shape[2],
                          "visible": None if vis is None else vis.clone()})
            return _orig(module, query, key, value, attention_mask, *a, **kw)

        mod.eager_attention_forward = wrapped
    try:
        with torch.no_grad():
            g = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens,
                               top_k=None, top_p=None, temperature=None)
    finally:
        for mod, orig in originals.items():
            mod.eager_attention_forward = orig
    return calls, g


def summarise_masks(model, calls, L):
    tc = model.config.text_config
    layer_types = list(getattr(tc, "layer_types", None) or ["full_attention"] * tc.num_hidden_layers)
    W = getattr(tc, "sliding_window", None) if tc.model_type == "gemma2" else None
    nl = tc.num_hidden_layers
    steps = [calls[i:i + nl] for i in range(0, len(calls), nl)]
    out = {"prompt_length": L, "sliding_window": W, "layer_types": layer_types, "prefill": {}, "decode": []}
    for c in steps[0]:
        lt = layer_types[c["layer"]]
        v = c["visible"]
        out["prefill"].setdefault(lt, {
            "q_len": c["q_len"], "kv_len": c["kv_len"],
            "all_prompt_pairs_visible": bool(v.all()),
            "n_masked_pairs": int((~v).sum()),
        })
    for t, step in enumerate(steps[1:], start=1):
        row = {"step": t, "position_of_query": L + t - 1}
        for c in step:
            lt = layer_types[c["layer"]]
            v = c["visible"]
            row.setdefault(lt, {"kv_len": c["kv_len"],
                                "visible_keys": int(v.sum()) if v is not None else c["kv_len"],
                                "mask_is_none": v is None})
        out["decode"].append(row)
    return out


# ------------------------------------------------- 2. our mask rule, rebuilt
def lm_logits_with_rule(model, inputs, gen, rule):
    """Uncached forward over prompt + gen[:-1] with a mask built by `rule`, fed to
    the language model as {layer_type: 4D additive mask}; returns logits at
    positions L-1 .. L+T-2 (the ones that chose gen[0..T-1]) and all prompt rows."""
    m = model.model
    tc = model.config.text_config
    ids = inputs["input_ids"][0]
    L = ids.shape[0]
    with torch.no_grad():
        feats = m.get_image_features(inputs["pixel_values"]).pooler_output.reshape(-1, tc.hidden_size)
        W_emb = m.language_model.embed_tokens.weight
        norm = torch.tensor(tc.hidden_size ** 0.5, dtype=torch.float32)
        full = torch.cat([ids, gen[:-1]])
        emb = W_emb[full] * norm
        is_img = torch.zeros_like(full, dtype=torch.bool)
        is_img[:L] = ids == IMAGE_TOKEN_ID
        emb[is_img] = rule.get("feature_scale", 1.0) * feats
        n = full.shape[0]
        i = torch.arange(n)[:, None]
        j = torch.arange(n)[None, :]
        masks = {}
        for lt in set(getattr(tc, "layer_types", None) or ["full_attention"]):
            vis = rule["visible"](i, j, L, lt, getattr(tc, "sliding_window", None))
            masks[lt] = torch.where(vis, 0.0, torch.finfo(torch.float32).min)[None, None]
        if getattr(tc, "layer_types", None) is None:  # Gemma 1: one mask for all layers
            masks = masks["full_attention"]
        pos = (torch.arange(n) + rule.get("pos_offset", 1))[None]
        h = m.language_model(inputs_embeds=emb[None], attention_mask=masks, position_ids=pos,
                             use_cache=False).last_hidden_state
        logits = model.lm_head(h)[0]
        cap = rule.get("softcap", getattr(tc, "final_logit_softcapping", None))
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
    return logits


def rule_hf(i, j, L, lt, W):
    prompt = (i < L) & (j < L)
    causal = j <= i
    if lt == "sliding_attention":
        causal = causal & (j > i - W)
    return prompt | causal


def rule_window_on_prompt(i, j, L, lt, W):
    if lt != "sliding_attention":
        return rule_hf(i, j, L, lt, W)
    prompt = (i < L) & (j < L) & ((i - j).abs() < W)
    return prompt | ((j <= i) & (j > i - W))


def rule_no_window(i, j, L, lt, W):
    return ((i < L) & (j < L)) | (j <= i)


def rule_causal_prompt(i, j, L, lt, W):
    causal = j <= i
    if lt == "sliding_attention":
        causal = causal & (j > i - W)
    return causal


def golden(name, case):
    d = GOLDEN_DIR / name / case
    return (np.load(d / "logit_columns.npy"), np.load(d / "prompt_logits.npy"),
            np.load(d / "greedy_ids.npy"), np.load(d / "greedy_step_logits.npy"))


def compare(logits, L, cols, pl, sl):
    lg = logits[:, torch.from_numpy(cols)].numpy()
    return {"prompt_logits_max_abs_diff": float(np.abs(lg[:L] - pl).max()),
            "step_logits_max_abs_diff": float(np.abs(lg[L - 1:] - sl).max())}


def mask_rules(name, case):
    model = load(name)
    inputs, meta, _ = case_inputs(model, name, case)
    cols, pl, gen, sl = golden(name, case)
    L = inputs["input_ids"].shape[1]
    gen_t = torch.from_numpy(gen)
    res = {}
    for rname, fn in [("hf_rule", rule_hf), ("window_also_on_prompt_block", rule_window_on_prompt),
                      ("no_sliding_window", rule_no_window), ("causal_prompt", rule_causal_prompt)]:
        res[rname] = compare(lm_logits_with_rule(model, inputs, gen_t, {"visible": fn}), L, cols, pl, sl)
        log(f"   {name}/{case} mask rule {rname:30}: {res[rname]}")
    return res


def switches(name, case):
    """Effect sizes of single semantic switches, relative to the golden."""
    model = load(name)
    tc = model.config.text_config
    inputs, meta, _ = case_inputs(model, name, case)
    cols, pl, gen, sl = golden(name, case)
    L = inputs["input_ids"].shape[1]
    gen_t = torch.from_numpy(gen)
    res = {"reference_rebuilt": compare(lm_logits_with_rule(model, inputs, gen_t, {"visible": rule_hf}),
                                        L, cols, pl, sl)}
    res["positions_0_based"] = compare(lm_logits_with_rule(
        model, inputs, gen_t, {"visible": rule_hf, "pos_offset": 0}), L, cols, pl, sl)
    res["image_features_times_sqrt_hidden"] = compare(lm_logits_with_rule(
        model, inputs, gen_t, {"visible": rule_hf, "feature_scale": tc.hidden_size ** 0.5}), L, cols, pl, sl)
    if getattr(tc, "final_logit_softcapping", None) is not None:
        res["no_final_logit_softcap"] = compare(lm_logits_with_rule(
            model, inputs, gen_t, {"visible": rule_hf, "softcap": None}), L, cols, pl, sl)
    layers = model.model.language_model.layers
    if getattr(tc, "attn_logit_softcapping", None) is not None:
        for lyr in layers:
            lyr.self_attn.attn_logit_softcapping = None
        res["no_attn_logit_softcap"] = compare(lm_logits_with_rule(
            model, inputs, gen_t, {"visible": rule_hf}), L, cols, pl, sl)
        for lyr in layers:
            lyr.self_attn.attn_logit_softcapping = tc.attn_logit_softcapping
    if tc.model_type == "gemma2" and tc.query_pre_attn_scalar != tc.head_dim:
        for lyr in layers:
            lyr.self_attn.scaling = tc.head_dim ** -0.5
        res["query_scale_head_dim_instead_of_query_pre_attn_scalar"] = compare(lm_logits_with_rule(
            model, inputs, gen_t, {"visible": rule_hf}), L, cols, pl, sl)
        for lyr in layers:
            lyr.self_attn.scaling = tc.query_pre_attn_scalar ** -0.5
    # bf16-rounded normaliser (what a bf16 run uses) instead of f32 sqrt(hidden)
    bf = float(torch.tensor(tc.hidden_size ** 0.5).to(torch.bfloat16))
    emb = model.model.language_model.embed_tokens
    old = emb.embed_scale.clone()
    emb.embed_scale.fill_(bf)
    with torch.no_grad():
        lg = model(**inputs).logits[0][:, torch.from_numpy(cols)].numpy()
    emb.embed_scale.copy_(old)
    res["normaliser_rounded_to_bf16"] = {"value": bf, "prompt_logits_max_abs_diff": float(np.abs(lg - pl).max())}
    for k, v in res.items():
        log(f"   {name}/{case} {k:55}: {v}")
    return res


def rope_facts():
    from transformers import Gemma2Config
    from transformers.models.gemma2.modeling_gemma2 import Gemma2RotaryEmbedding

    cfg = Gemma2Config(head_dim=256, hidden_size=2304, num_attention_heads=8)
    r = Gemma2RotaryEmbedding(cfg)
    inv = r.inv_freq
    exact = 1.0 / (10000.0 ** (np.arange(0, 256, 2, dtype=np.float64) / 256))
    f32_formula = (1.0 / (torch.tensor(10000.0) ** (torch.arange(0, 256, 2, dtype=torch.int64).float() / 256))).numpy()
    x = torch.zeros(1, 1, 256)
    pos = torch.tensor([[1, 300, 4100]])
    cos, sin = r(x, pos)
    ang = pos[..., None].double() * torch.from_numpy(exact)
    return {
        "inv_freq_dtype": str(inv.dtype),
        "inv_freq_equals_f32_formula": bool(np.array_equal(inv.numpy(), f32_formula)),
        "inv_freq_max_abs_diff_vs_f64_exact": float(np.abs(inv.numpy().astype(np.float64) - exact).max()),
        "cos_sin_dtype": str(cos.dtype),
        "cos_max_abs_diff_vs_f64_angles_at_pos_4100": float((cos[0, 2].double() - torch.cat([ang, ang], -1)[0, 2].cos()).abs().max()),
    }


def main():
    set_threads()
    report = {}
    log("[semantics] masks recorded from generate() on pg2_gqa_window/answer_rocket ...")
    model = load("pg2_gqa_window")
    inputs, meta, _ = case_inputs(model, "pg2_gqa_window", "answer_rocket")
    L = inputs["input_ids"].shape[1]
    calls, g = record_masks(model, inputs, meta["max_new_tokens"])
    assert g[0, L:].tolist() == np.load(GOLDEN_DIR / "pg2_gqa_window/answer_rocket/greedy_ids.npy").tolist()
    report["recorded_masks_pg2_gqa_window"] = summarise_masks(model, calls, L)
    # the same prefill without token_type_ids (plain causal / sliding causal)
    calls2 = []
    import transformers.models.gemma2.modeling_gemma2 as mg2
    orig = mg2.eager_attention_forward

    def wrapped(module, query, key, value, attention_mask, *a, **kw):
        calls2.append({"layer": module.layer_idx, "q_len": query.shape[2], "kv_len": key.shape[2],
                       "visible": attention_mask[0, 0] == 0})
        return orig(module, query, key, value, attention_mask, *a, **kw)

    mg2.eager_attention_forward = wrapped
    with torch.no_grad():
        model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"],
              attention_mask=inputs["attention_mask"])
    mg2.eager_attention_forward = orig
    lt = report["recorded_masks_pg2_gqa_window"]["layer_types"]
    report["prefill_without_token_type_ids"] = {
        t: {"n_visible_pairs": int(c["visible"].sum()),
            "is_causal": bool(torch.equal(c["visible"], torch.ones(L, L, dtype=torch.bool).tril())),
            "is_sliding_causal_w8": bool(torch.equal(c["visible"], torch.ones(L, L, dtype=torch.bool).tril()
                                                      & ~torch.ones(L, L, dtype=torch.bool).tril(-8)))}
        for t, c in {lt[c["layer"]]: c for c in calls2}.items()}
    log(json.dumps(report["recorded_masks_pg2_gqa_window"]["prefill"]))
    for row in report["recorded_masks_pg2_gqa_window"]["decode"][:3]:
        log(f"   decode {row}")
    log(f"   no token_type_ids: {report['prefill_without_token_type_ids']}")

    log("[semantics] mask rules rebuilt and compared with the golden records ...")
    report["mask_rules"] = {
        "pg2_gqa_window/answer_rocket": mask_rules("pg2_gqa_window", "answer_rocket"),
        "pg2_gqa_window/detect_chelsea": mask_rules("pg2_gqa_window", "detect_chelsea"),
        "pg2_two_images/answer_chelsea_coffee": mask_rules("pg2_two_images", "answer_chelsea_coffee"),
        "pg1_mqa/caption_chelsea": mask_rules("pg1_mqa", "caption_chelsea"),
    }
    log("[semantics] effect sizes of single switches ...")
    report["switches"] = {
        "pg1_mqa/caption_chelsea": switches("pg1_mqa", "caption_chelsea"),
        "pg2_gqa_window/answer_rocket": switches("pg2_gqa_window", "answer_rocket"),
        "pg2_qpas/caption_rocket": switches("pg2_qpas", "caption_rocket"),
    }
    report["rope"] = rope_facts()
    log(f"[semantics] rope: {report['rope']}")
    gc = model.generation_config
    report["generation_config"] = {"eos_token_id": gc.eos_token_id, "bos_token_id": gc.bos_token_id,
                                   "pad_token_id": gc.pad_token_id}
    REPORT.write_text(json.dumps(report, indent=1) + "\n")
    log(f"[semantics] wrote {REPORT}")


if __name__ == "__main__":
    main()
