#!/usr/bin/env python
"""Run the Hugging Face reference (transformers PaliGemmaForConditionalGeneration,
f32, eager attention) on the fixture models and the real photos, and write the
golden records under tests/fixtures/golden/<model>/<case>/.

Per case (.npy little-endian, C order):
  pixel_values.npy        f32 [num_images, 3, S, S]   (PaliGemmaProcessor, slow PIL SigLIP processor)
  input_ids.npy           i64 [L]
  vision_hidden.npy       f32 [num_images, N, vision_hidden]   SigLIP output after post_layernorm
  image_features.npy      f32 [num_images*N, text_hidden]      projector output = LM input rows at <image>
  logit_columns.npy       i64 [C]     vocabulary ids of the stored logit columns
  prompt_logits.npy       f32 [L, C]  logits at every prompt position (after the final soft-cap, if any)
  greedy_ids.npy          i64 [T]     generate(do_sample=False), eos included if it stopped on it
  greedy_step_logits.npy  f32 [T, C]  raw logits that chose greedy_ids[t] (output_logits=True)
  beam_ids.npy            i64 [Tb]    generate(num_beams=3, length_penalty=0.0), new tokens only
  beam_score.npy          f32 []      sequences_scores of that beam (also in meta.json)
  meta.json               inputs, flags describing the reference semantics, statistics

Usage: .venv-golden/bin/python tools/golden/make_golden.py [model ...]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BOS_ID, EOS_ID, GOLDEN_DIR, IMAGE_TOKEN_ID, LOC_BASE, MODEL_VOCAB, MODELS_DIR, NEWLINE_ID,
    PHOTOS_DIR, filler_range, log, set_threads,
)
from hf_utils import make_processor  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

MAX_NEW_TOKENS = 10
NUM_BEAMS = 3
N_FILLER_COLUMNS = 64

# model -> list of (case name, [photos], prompt)
CASES: dict[str, list[tuple[str, list[str], str]]] = {
    "pg1_mqa": [
        ("caption_chelsea", ["chelsea.png"], "caption en"),
        ("loc_coffee", ["coffee.png"], "detect cup <loc0123><loc0456>"),
    ],
    "pg2_gqa_window": [
        ("detect_chelsea", ["chelsea.png"], "detect cat"),
        ("answer_rocket", ["rocket.jpg"], "answer en what is in the picture?"),
    ],
    "pg2_qpas": [
        ("caption_rocket", ["rocket.jpg"], "caption en"),
        ("segment_chelsea", ["chelsea.png"], "segment cat <loc0123>"),
    ],
    "pg2_two_images": [
        ("answer_chelsea_coffee", ["chelsea.png", "coffee.png"], "answer en which image has a cat?"),
        ("caption_rocket_chelsea", ["rocket.jpg", "chelsea.png"], "caption en"),
    ],
    "pg1_untied_lm_head": [
        ("caption_coffee_eos", ["coffee.png"], "caption en"),   # stops on <eos> (planted)
    ],
}


def logit_columns(n_trained: int) -> np.ndarray:
    """All non-filler ids (trained text pieces, loc, seg, <image>, 63 padding rows)
    plus N_FILLER_COLUMNS evenly spaced filler ids (their logits are exactly 0)."""
    first, end = filler_range()
    assert first == n_trained
    filler = np.unique(np.linspace(first, end - 1, N_FILLER_COLUMNS).round().astype(np.int64))
    cols = np.concatenate([np.arange(0, first), filler, np.arange(LOC_BASE, MODEL_VOCAB)]).astype(np.int64)
    return np.sort(cols)


def save(d: Path, name: str, arr) -> None:
    a = np.ascontiguousarray(arr)
    if a.dtype == np.float64 or a.dtype == np.float32:
        a = a.astype("<f4")
    elif a.dtype.kind in "iu":
        a = a.astype("<i8")
    np.save(d / f"{name}.npy", a, allow_pickle=False)


def stats(x: np.ndarray) -> dict:
    return {"max_abs": float(np.abs(x).max()), "std": float(x.std()), "mean": float(x.mean())}


def run_model(name: str) -> None:
    from transformers import PaliGemmaForConditionalGeneration
    from transformers.image_utils import load_image

    mdir = MODELS_DIR / name
    model = PaliGemmaForConditionalGeneration.from_pretrained(
        mdir, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    tc, vc = cfg.text_config, cfg.vision_config
    S, P = vc.image_size, vc.patch_size
    N = (S // P) ** 2
    proc = make_processor(S, P)
    first, end = filler_range()
    cols = logit_columns(first)
    cols_t = torch.from_numpy(cols)
    softcap = getattr(tc, "final_logit_softcapping", None)
    layer_types = list(getattr(tc, "layer_types", None) or ["full_attention"] * tc.num_hidden_layers)
    eos_ids = model.generation_config.eos_token_id
    eos_ids = [eos_ids] if isinstance(eos_ids, int) else list(eos_ids)
    assert eos_ids == [EOS_ID], eos_ids

    # capture what actually enters the language model
    captured = {}

    def pre_hook(_mod, args, kwargs):
        if kwargs.get("inputs_embeds") is not None:
            captured.setdefault("inputs_embeds", kwargs["inputs_embeds"].detach().clone())
            captured.setdefault("position_ids", kwargs["position_ids"].detach().clone())
            captured.setdefault("attention_mask", kwargs["attention_mask"])

    hook = model.model.language_model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    model64 = PaliGemmaForConditionalGeneration.from_pretrained(
        mdir, dtype=torch.float64, attn_implementation="eager").eval()
    hook64 = model64.model.language_model.register_forward_pre_hook(pre_hook, with_kwargs=True)

    out_root = GOLDEN_DIR / name
    if out_root.exists():
        shutil.rmtree(out_root)
    for case, photos, prompt in CASES[name]:
        log(f"[golden] {name}/{case}: {photos} {prompt!r}")
        d = out_root / case
        d.mkdir(parents=True)
        images = [load_image(str(PHOTOS_DIR / p)) for p in photos]
        n_img = len(images)
        inputs = proc(images=[images] if n_img > 1 else images[0], text=prompt, return_tensors="pt")
        ids = inputs["input_ids"][0]
        L = ids.shape[0]
        # layout check: <image>*N*n_img, <bos>, prefix tokens, "\n"
        assert (ids[: N * n_img] == IMAGE_TOKEN_ID).all() and ids[N * n_img] == BOS_ID, ids
        assert ids[-1] == NEWLINE_ID and not (ids[N * n_img + 1:] == IMAGE_TOKEN_ID).any()
        assert (inputs["token_type_ids"] == 0).all() and (inputs["attention_mask"] == 1).all()
        text_ids = proc.tokenizer(prompt + "\n", add_special_tokens=False).input_ids
        assert ids[N * n_img + 1:].tolist() == text_ids, "prefix and \\n are tokenized together"
        pv = inputs["pixel_values"]
        assert pv.shape == (n_img, 3, S, S) and pv.dtype == torch.float32

        with torch.no_grad():
            vis = model.model.vision_tower(pixel_values=pv).last_hidden_state
            feats = model.model.get_image_features(pv).pooler_output
            captured.clear()
            out = model(**inputs)
        emb = captured["inputs_embeds"][0]
        pos = captured["position_ids"][0]
        is_img = ids == IMAGE_TOKEN_ID
        flat_feats = feats.reshape(-1, feats.shape[-1])
        # image rows enter the LM exactly as the projector output (no sqrt(hidden) factor)
        assert torch.equal(emb[is_img], flat_feats)
        # text rows are embedding * sqrt(hidden) (normaliser as f32)
        W = model.model.language_model.embed_tokens.weight
        normalizer = torch.tensor(tc.hidden_size ** 0.5, dtype=torch.float32)
        assert torch.equal(emb[~is_img], W[ids[~is_img]] * normalizer)
        assert pos.tolist() == list(range(1, L + 1)), "positions are index + 1"
        logits = out.logits[0]
        assert logits.shape == (L, MODEL_VOCAB)
        if end > first:
            assert (logits[:, first:end] == 0).all(), "filler logits must be exactly 0"

        # greedy
        with torch.no_grad():
            g = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                               output_logits=True, return_dict_in_generate=True,
                               num_beams=1, top_k=None, top_p=None, temperature=None)
        gen = g.sequences[0, L:]
        step_logits = torch.stack([x[0] for x in g.logits])
        assert step_logits.shape[0] == gen.shape[0]
        assert torch.equal(step_logits.argmax(-1), gen)
        stopped_on_eos = bool(gen.shape[0] < MAX_NEW_TOKENS)
        if stopped_on_eos:
            assert gen[-1].item() in eos_ids
        # cross-check the cached decode against uncached full forwards (prompt block
        # bidirectional, generated tokens causal: token_type_ids 1)
        max_recompute_diff = 0.0
        # (inputs_embeds, so that a generated <image> id is embedded as an ordinary row,
        # exactly as generate() does in its decode steps, which pass no pixel_values)
        with torch.no_grad():
            for t in range(1, gen.shape[0]):
                e = torch.cat([emb, W[gen[:t]] * normalizer])[None]
                tt = torch.cat([torch.zeros(L, dtype=torch.long), torch.ones(t, dtype=torch.long)])[None]
                o = model(inputs_embeds=e, token_type_ids=tt,
                          attention_mask=torch.ones(e.shape[:2], dtype=torch.long))
                max_recompute_diff = max(max_recompute_diff,
                                         float((o.logits[0, -1] - step_logits[t]).abs().max()))

        # the same computation in float64 (prompt logits, and the decode steps as
        # uncached teacher-forced forwards): the numerical noise floor of this golden
        with torch.no_grad():
            i64 = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
            captured.clear()
            o64 = model64(**i64)
            emb64 = captured["inputs_embeds"][0]
            f64_prompt = float((o64.logits[0].double() - logits.double()).abs().max())
            f64_feats = float((model64.model.get_image_features(i64["pixel_values"]).pooler_output
                               .reshape(-1, feats.shape[-1]) - flat_feats.double()).abs().max())
            W64 = model64.model.language_model.embed_tokens.weight
            e = torch.cat([emb64, W64[gen[:-1]] * torch.tensor(tc.hidden_size ** 0.5, dtype=torch.float64)])[None]
            tt = torch.cat([torch.zeros(L, dtype=torch.long), torch.ones(e.shape[1] - L, dtype=torch.long)])[None]
            o = model64(inputs_embeds=e, token_type_ids=tt, attention_mask=torch.ones(e.shape[:2], dtype=torch.long))
            f64_steps = float((o.logits[0, L - 1:] - step_logits.double()).abs().max())

        # beam search
        with torch.no_grad():
            b = model.generate(**inputs, do_sample=False, num_beams=NUM_BEAMS, length_penalty=0.0,
                               num_return_sequences=1, max_new_tokens=MAX_NEW_TOKENS,
                               output_scores=True, return_dict_in_generate=True,
                               top_k=None, top_p=None, temperature=None)
        beam = b.sequences[0, L:]
        # (one returned sequence: never padded, so everything after the prompt is the beam)
        beam_score = float(b.sequences_scores[0])
        # sequences_scores = sum over the new tokens of log_softmax(soft-capped logits)
        # (length_penalty 0): recompute it with an uncached teacher-forced forward
        with torch.no_grad():
            e = torch.cat([emb, W[beam[:-1]] * normalizer])[None]
            tt = torch.cat([torch.zeros(L, dtype=torch.long), torch.ones(e.shape[1] - L, dtype=torch.long)])[None]
            o = model(inputs_embeds=e, token_type_ids=tt, attention_mask=torch.ones(e.shape[:2], dtype=torch.long))
            sel = torch.arange(beam.shape[0])
            lp32 = torch.log_softmax(o.logits[0, L - 1:], -1)[sel, beam]          # as HF: f32 over 257216
            lp64 = torch.log_softmax(o.logits[0, L - 1:].double(), -1)[sel, beam]
            beam_score_recomputed = float(lp32.sum())
            beam_score_f64 = float(lp64.sum())
        assert abs(beam_score_recomputed - beam_score) < 2e-4, (beam_score, beam_score_recomputed)

        pl = logits[:, cols_t].numpy()
        sl = step_logits[:, cols_t].numpy()
        save(d, "pixel_values", pv.numpy())
        save(d, "input_ids", ids.numpy())
        save(d, "vision_hidden", vis.numpy())
        save(d, "image_features", flat_feats.numpy())
        save(d, "logit_columns", cols)
        save(d, "prompt_logits", pl)
        save(d, "greedy_ids", gen.numpy())
        save(d, "greedy_step_logits", sl)
        save(d, "beam_ids", beam.numpy())
        np.save(d / "beam_score.npy", np.array(beam_score, dtype="<f4"), allow_pickle=False)

        # the raw logits before the final soft-cap, for the statistics only
        with torch.no_grad():
            h = model.model(**inputs).last_hidden_state[0]
            raw = (h @ model.lm_head.weight.T).numpy()
        nonfill = np.concatenate([np.arange(0, first), np.arange(LOC_BASE, MODEL_VOCAB)])
        meta = {
            "model": name,
            "images": photos,
            "prompt": prompt,
            "max_new_tokens": MAX_NEW_TOKENS,
            "num_images": n_img,
            "image_size": S,
            "patch_size": P,
            "num_image_tokens_per_image": N,
            "prompt_length": L,
            "greedy_tokens": int(gen.shape[0]),
            "greedy_stopped_on_eos": stopped_on_eos,
            "greedy_text": proc.tokenizer.decode(gen.tolist(), skip_special_tokens=False),
            "beam": {"num_beams": NUM_BEAMS, "length_penalty": 0.0, "num_return_sequences": 1,
                     "early_stopping": False, "score": beam_score,
                     "score_recomputed_teacher_forced": beam_score_recomputed,
                     "score_with_f64_log_softmax": beam_score_f64,
                     "note": "HF takes log_softmax in f32 over all 257216 logits: its score differs from the "
                             "f64 log-softmax sum by up to ~1e-3; compare beam scores with a tolerance of ~2e-3",
                     "score_definition": "sum of log_softmax(soft-capped logits) of the new tokens "
                                         "(length_penalty 0 -> divided by length^0 = 1)"},
            "reference": {
                "library": "transformers", "transformers_version": __import__("transformers").__version__,
                "torch_version": torch.__version__,
                "dtype": "float32", "attn_implementation": "eager",
                "image_processor": "SiglipImageProcessorPil (slow/PIL): RGB, PIL bicubic resize to SxS on uint8, "
                                   "x*(1/255) in f64 -> f32, (x-0.5)/0.5",
                "image_loader": "transformers.image_utils.load_image (applies EXIF orientation)",
                "position_ids": "1-based: position = index + 1 (prefill and every decode step)",
                "text_embedding_scale": "embed * float32(sqrt(text hidden)) for text tokens only",
                "image_features_scaled": False,
                "image_features_note": "projector output is inserted unchanged at <image> positions",
                "final_logit_softcapping": softcap,
                "final_logit_softcapping_applied": softcap is not None,
                "attn_logit_softcapping": getattr(tc, "attn_logit_softcapping", None),
                "query_scale": (tc.query_pre_attn_scalar ** -0.5 if tc.model_type == "gemma2"
                                else tc.head_dim ** -0.5),
                "head_dim": tc.head_dim,
                "layer_types": layer_types,
                "sliding_window": getattr(tc, "sliding_window", None) if tc.model_type == "gemma2" else None,
                "prefill_mask": "whole prompt (image+bos+prefix+\\n) bidirectional on ALL layers; "
                                "the sliding window does NOT restrict the prompt block in prefill",
                "decode_mask": "new token attends to all previous tokens on full layers; on sliding layers "
                               "only to key positions j with j > i - sliding_window (window incl. itself)",
                "eos_token_ids": eos_ids,
                "tied_lm_head": bool(cfg.tie_word_embeddings),
            },
            "stats": {
                "prompt_logits": stats(pl),
                "raw_logits_before_softcap_nonfiller": stats(raw[:, nonfill]),
                "greedy_step_logits": stats(sl),
                "vision_hidden": stats(vis.numpy()),
                "image_features": stats(flat_feats.numpy()),
                "decode_vs_uncached_forward_max_abs_diff": max_recompute_diff,
                "f32_vs_f64_max_abs_diff": {"prompt_logits": f64_prompt, "greedy_step_logits": f64_steps,
                                            "image_features": f64_feats},
            },
        }
        (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        log(f"   L={L} greedy={gen.tolist()} eos={stopped_on_eos} beam={beam.tolist()} score={beam_score:.4f}")
        log(f"   logits std={pl.std():.3f} max|.|={np.abs(pl).max():.2f} raw max|.|={np.abs(raw[:, nonfill]).max():.2f}"
            f"  decode-vs-forward {max_recompute_diff:.2e}")
        log(f"   f32 vs f64: prompt {f64_prompt:.2e} steps {f64_steps:.2e} features {f64_feats:.2e}")
    hook.remove()
    hook64.remove()


def main(names: list[str]) -> None:
    set_threads()
    for name in names or list(CASES):
        run_model(name)


if __name__ == "__main__":
    main(sys.argv[1:])
