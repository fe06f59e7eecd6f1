#!/usr/bin/env python
"""Golden training losses, gradients and one optimizer step (issue 5: fine-tuning).

Independent reference: PyTorch autograd through transformers'
PaliGemmaForConditionalGeneration (float32, eager attention, train() mode with
every dropout probability 0) on the tiny fixture models in
tests/fixtures/models/<name>/ and a batch of 2 (image, prefix, suffix) examples
built with PaliGemmaProcessor(text=prefixes, images=..., suffix=suffixes,
padding="longest") exactly as a user would.  Writes, per model,
tests/fixtures/grad_golden/<model>/:

  meta.json           ids, masks, labels, positions, losses (HF reduction,
                      big_vision reduction, label smoothing), per-example and
                      per-token losses, definitions, versions, f32-vs-f64 noise
                      floor of every gradient, finite-difference check (one model)
  batch.safetensors   pixel_values f32 [B*n_img, 3, S, S]; the per-layer-type
                      attention masks HF built (u8, 1 = visible) [B, L, L];
                      suffix_logits f32 [T0, C] (example 0, the positions that
                      predict its suffix tokens) and their vocabulary columns (i64)
  grads.safetensors   d loss_bv / d param (f32) for every parameter, named as in
                      the checkpoint's safetensors; the [257216 x hidden] embedding
                      (and an untied lm_head) only as selected rows:
                      "<name>@rows" f32 [R, hidden], the row ids in meta.json
                      grads.row_ids (the gradients are float64 autograd, as f32)
  optim.safetensors   (pg2_gqa_window only) the updated values of a few tensors
                      after one step of each optimizer variant ("<variant>/<name>")

Usage: .venv-golden/bin/python tools/golden/make_grad_golden.py [--selfcheck] [model ...]
  --selfcheck   also regenerate everything into a temporary folder and check the
                files are byte-identical (prints sha256 of every output file)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    FIXTURES, IMAGE_TOKEN_ID, MODEL_VOCAB, MODELS_DIR, PHOTOS_DIR, log, set_threads,
)
from hf_utils import make_processor  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

OUT_DIR = FIXTURES / "grad_golden"
IGNORE = -100
LABEL_SMOOTHING = 0.1
N_SAMPLED_ROWS = 2048
ROW_SAMPLE_SEED = 5
# stratified sample of the "other" rows (not an id of the batch): how many from each id range
ROW_STRATA = [(0, 2048, 768), (2048, 256000, 640), (256000, 257024, 512), (257024, MODEL_VOCAB, 128)]
assert sum(n for *_, n in ROW_STRATA) == N_SAMPLED_ROWS
OPTIM_MODEL = "pg2_gqa_window"
FD_MODEL = "pg2_gqa_window"

LOC = "<loc0123><loc0456><loc0789><loc1011>"
SEG = "".join(f"<seg{i:03d}>" for i in (12, 127, 0, 64, 3, 99, 45, 7, 88, 21, 110, 5, 60, 33, 76, 2))
# model -> two examples (images, prefix, suffix); prefix and suffix lengths differ
BATCHES: dict[str, list[tuple[list[str], str, str]]] = {
    "pg1_mqa": [
        (["chelsea.png"], "detect cat", LOC + " cat"),
        (["coffee.png"], "answer en what is on the table?", "a cup of coffee on a wooden table"),
    ],
    "pg1_untied_lm_head": [
        (["coffee.png"], "caption en", "a cup of coffee"),
        (["rocket.jpg"], "answer en what is in the picture?", "a rocket on the launch pad"),
    ],
    "pg2_gqa_window": [
        (["chelsea.png"], "detect cat", LOC + " cat"),
        (["rocket.jpg"], "answer en what is in the picture?", "a rocket on the launch pad at night"),
    ],
    "pg2_qpas": [
        (["rocket.jpg"], "caption en", "a rocket on the launch pad"),
        (["chelsea.png"], "segment cat ; dog", "<loc0100><loc0200><loc0900><loc1000>" + SEG + " cat"),
    ],
    "pg2_two_images": [
        (["chelsea.png", "coffee.png"], "answer en which image has a cat?", "the first"),
        (["rocket.jpg", "chelsea.png"], "caption en", "a rocket and a cat"),
    ],
}

DEFINITIONS = {
    "shift": "logits[b, t] (t = 0..L-2) predict input_ids[b, t+1]; position t takes part iff "
             "labels[b, t+1] != -100 (HF: labels padded with -100 on the right, shift_labels = labels[:, 1:])",
    "labels": "PaliGemmaProcessor: labels = input_ids where token_type_ids == 1 (suffix + <eos>), else -100 "
              "(image tokens, <bos>, prefix, '\\n' and padding all have token_type_ids 0)",
    "token_nll": "nll[b, t] = logsumexp(logits[b, t, :]) - logits[b, t, y], y = input_ids[b, t+1], over all "
                 "257216 columns of the (soft-capped where the model has final_logit_softcapping) logits",
    "loss_hf": "transformers ForCausalLMLoss: cross_entropy(mean) = sum_{b,t in suffix} nll[b,t] / "
               "(number of suffix tokens in the whole batch)",
    "loss_bv": "big_vision trainers/proj/paligemma/train.py: per example mean over its suffix tokens, "
               "sum_t nll[b,t] / max(n_b, 1), then the mean over the B examples",
    "loss_bv_ls": "big_vision with config.label_smoothing = eps = 0.1: targets = where(onehot, 1 - eps, "
                  "eps / (V - 1)) (NOT optax.smooth_labels), token loss = -sum_v targets_v * log_softmax(logits)_v, "
                  "V = 257216 (the logits width here; big_vision's own vocab is 257152), then the bv reduction",
    "loss_bv_ls_optax": "the same with optax.smooth_labels targets (1 - eps) * onehot + eps / V (for "
                        "reference only; big_vision's trainer does not use it)",
    "gradients": "d loss_bv / d param, float64 autograd (true_f64: the float64 model with transformers' f32 "
                 "casts kept in f64), stored as f32; the tied embedding's gradient is the sum of its "
                 "input-embedding and output-layer (lm_head) contributions",
}


# ----------------------------------------------------------------------------- helpers

def ckpt_names(mdir: Path) -> list[str]:
    files = sorted(mdir.glob("*.safetensors"))
    keys = []
    for f in files:
        with safe_open(str(f), "pt") as s:
            keys += list(s.keys())
    return sorted(keys)


def name_map(model, mdir: Path) -> dict[str, str]:
    """internal transformers parameter name -> checkpoint tensor name."""
    from make_models import to_layout

    keys = ckpt_names(mdir)
    layout = "old" if any(k.startswith("language_model.model.") for k in keys) else "new"
    params = dict(model.named_parameters())  # deduplicated: a tied lm_head is not listed
    mapping = {n: next(iter(to_layout({n: None}, layout))) for n in params}
    assert sorted(mapping.values()) == keys, (set(mapping.values()) ^ set(keys))
    return mapping, layout


def load_model(mdir: Path, dtype):
    from transformers import PaliGemmaForConditionalGeneration

    m = PaliGemmaForConditionalGeneration.from_pretrained(mdir, dtype=dtype, attn_implementation="eager")
    m.train()
    return m


def check_no_dropout(model) -> dict:
    tc, vc = model.config.text_config, model.config.vision_config
    info = {"text_config.attention_dropout": float(tc.attention_dropout),
            "vision_config.attention_dropout": float(vc.attention_dropout)}
    assert info["text_config.attention_dropout"] == 0.0 and info["vision_config.attention_dropout"] == 0.0
    drops = [(n, float(mod.p)) for n, mod in model.named_modules()
             if isinstance(mod, (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.AlphaDropout))]
    assert all(p == 0.0 for _, p in drops), drops
    info["dropout_modules"] = len(drops)
    for k in ("dropout", "hidden_dropout", "embd_pdrop", "resid_pdrop"):
        for c, cn in ((tc, "text_config"), (vc, "vision_config")):
            if getattr(c, k, None) not in (None, 0, 0.0):
                raise AssertionError(f"{cn}.{k} = {getattr(c, k)}")
    assert model.training and all(mod.training for mod in model.modules())
    assert not getattr(model, "is_activation_checkpointing", False)
    info["how"] = ("model.train(); config attention_dropout 0.0 (text and vision: the only dropout in the "
                   "eager attention, `dropout=0.0 if not self.training else self.attention_dropout`); "
                   f"{len(drops)} torch.nn.Dropout modules, all p = 0; no other train-mode behaviour "
                   "(no gradient checkpointing, no batch norm)")
    return info


def token_nll(logits: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor):
    """per-position nll over the full vocab, f64; returns nll [B, L-1] (0 where masked) and mask."""
    lg = logits[:, :-1].double()
    tgt = ids[:, 1:]
    mask = labels[:, 1:] != IGNORE
    assert torch.equal(labels[:, 1:][mask], tgt[mask])
    lse = torch.logsumexp(lg, -1)
    nll = lse - lg.gather(-1, tgt[..., None])[..., 0]
    return nll * mask, mask, lse


def bv_loss(logits: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor, eps: float = 0.0,
            optax_smoothing: bool = False):
    """big_vision reduction (in the dtype of `logits`)."""
    lg = logits[:, :-1]
    tgt = ids[:, 1:]
    mask = (labels[:, 1:] != IGNORE).to(lg.dtype)
    logp = torch.log_softmax(lg, -1)
    V = lg.shape[-1]
    if eps == 0.0:
        tok = -logp.gather(-1, tgt[..., None])[..., 0]
    else:
        onehot = torch.nn.functional.one_hot(tgt, V).to(lg.dtype)
        if optax_smoothing:
            targets = (1.0 - eps) * onehot + eps / V
        else:
            targets = torch.where(onehot == 1.0, torch.tensor(1.0 - eps, dtype=lg.dtype),
                                  torch.tensor(eps / (V - 1), dtype=lg.dtype))
        tok = -(logp * targets).sum(-1)
    per_ex = (tok * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_ex.mean(), per_ex


@contextlib.contextmanager
def true_f64():
    """transformers' Gemma RMSNorm computes in x.float() and the eager attentions take the softmax with
    dtype=float32, even in a float64 model: that leaves ~1e-7 noise in an "f64" loss, too much for
    finite differences.  Inside this context a float64 tensor's .float() is a no-op and softmax keeps
    float64 inputs in float64 (RoPE cos/sin stay from f32 angles: a constant, not noise)."""
    orig_float, orig_softmax = torch.Tensor.float, torch.nn.functional.softmax

    def _float(self, *a, **k):
        return self if self.dtype == torch.float64 else orig_float(self, *a, **k)

    def _softmax(x, *a, dtype=None, **k):
        if x.dtype == torch.float64:
            dtype = None
        return orig_softmax(x, *a, dtype=dtype, **k)

    torch.Tensor.float, torch.nn.functional.softmax = _float, _softmax
    try:
        yield
    finally:
        torch.Tensor.float, torch.nn.functional.softmax = orig_float, orig_softmax


def f(x) -> float:
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- per model

def make_batch(proc, cases):
    from transformers.image_utils import load_image

    imgs = [[load_image(str(PHOTOS_DIR / p)) for p in photos] for photos, _, _ in cases]
    n_img = len(imgs[0])
    assert all(len(x) == n_img for x in imgs)
    images = [x[0] for x in imgs] if n_img == 1 else imgs
    inputs = proc(text=[c[1] for c in cases], images=images, suffix=[c[2] for c in cases],
                  padding="longest", return_tensors="pt")
    return inputs, n_img


def sampled_rows(batch_ids: list[int]) -> list[int]:
    rng = np.random.default_rng(ROW_SAMPLE_SEED)
    batch = set(batch_ids)
    out = []
    for lo, hi, n in ROW_STRATA:
        cand = np.array([i for i in range(lo, hi) if i not in batch], dtype=np.int64)
        out += sorted(rng.choice(cand, size=n, replace=False).tolist())
    return out


def run_model(name: str, out_root: Path) -> dict:
    from make_golden import logit_columns
    from common import filler_range

    mdir = MODELS_DIR / name
    model = load_model(mdir, torch.float32)
    names, layout = name_map(model, mdir)
    cfg = model.config
    tc, vc = cfg.text_config, cfg.vision_config
    S, P = vc.image_size, vc.patch_size
    N = (S // P) ** 2
    proc = make_processor(S, P)
    cases = BATCHES[name]
    inputs, n_img = make_batch(proc, cases)
    ids, tt, am, labels = (inputs[k] for k in ("input_ids", "token_type_ids", "attention_mask", "labels"))
    B, L = ids.shape
    pv = inputs["pixel_values"]
    assert pv.dtype == torch.float32 and pv.shape == (B * n_img, 3, S, S)
    # processor facts the C++ side must reproduce
    assert proc.tokenizer.padding_side == "left"
    for b in range(B):
        npad = int((am[b] == 0).sum())
        assert (am[b, :npad] == 0).all() and (am[b, npad:] == 1).all(), "left padding"
        assert (ids[b, :npad] == 0).all()
        assert (ids[b, npad:npad + N * n_img] == IMAGE_TOKEN_ID).all() and ids[b, npad + N * n_img] == 2
        assert ((tt[b] == 1) == (labels[b] != IGNORE)).all()
        suf = (tt[b] == 1).nonzero()[:, 0]
        assert suf.min() > npad + N * n_img and suf.max() == L - 1 and ids[b, -1] == 1, "suffix ends in <eos>"
        assert (suf == torch.arange(int(suf.min()), L)).all()
        assert ids[b, int(suf.min()) - 1] == 108, "'\\n' right before the suffix"
    n_sup = (labels[:, 1:] != IGNORE).sum(-1).tolist()
    prefix_lens = [int(((tt[b] == 0) & (am[b] == 1)).sum()) for b in range(B)]
    assert len(set(n_sup)) == B and len(set(prefix_lens)) == B, (n_sup, prefix_lens)

    dropout_info = check_no_dropout(model)

    # capture what HF feeds the language model (masks per layer type, positions)
    captured = {}

    def pre_hook(_mod, _args, kwargs):
        captured["attention_mask"] = kwargs["attention_mask"]
        captured["position_ids"] = kwargs["position_ids"].detach().clone()

    hook = model.model.language_model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    fwd = {k: inputs[k] for k in ("input_ids", "token_type_ids", "attention_mask", "pixel_values", "labels")}
    model.zero_grad(set_to_none=True)
    out = model(**fwd, use_cache=False)
    hook.remove()
    logits = out.logits
    assert logits.shape == (B, L, MODEL_VOCAB) and logits.dtype == torch.float32
    loss_hf = out.loss
    nll, mask, lse = token_nll(logits.detach(), ids, labels)
    loss_hf_check = nll.sum() / mask.sum()
    # (HF's f32 cross_entropy over 257216 columns vs this f64 sum: ~2e-6 relative)
    assert abs(f(loss_hf) - f(loss_hf_check)) < 1e-5 * abs(f(loss_hf_check)), (f(loss_hf), f(loss_hf_check))
    loss_bv, per_ex = bv_loss(logits, ids, labels)
    with torch.no_grad():
        loss_bv_ls, per_ex_ls = bv_loss(logits.detach().double(), ids, labels, LABEL_SMOOTHING)
        loss_bv_ls_optax, _ = bv_loss(logits.detach().double(), ids, labels, LABEL_SMOOTHING, optax_smoothing=True)
        loss_bv64, per_ex64 = bv_loss(logits.detach().double(), ids, labels)
    loss_bv.backward()

    # masks as HF built them (eager: 0 visible, finfo.min hidden), positions
    am_cap = captured["attention_mask"]
    masks = am_cap if isinstance(am_cap, dict) else {"full_attention": am_cap}
    mask_u8 = {}
    for k, v in sorted(masks.items()):
        assert v.shape == (B, 1, L, L), v.shape
        mask_u8[k] = (v[:, 0] == 0).to(torch.uint8).contiguous()
    pos = captured["position_ids"]
    assert pos.shape == (1, L) and pos[0].tolist() == list(range(1, L + 1)), pos
    layer_types = list(getattr(tc, "layer_types", None) or ["full_attention"] * tc.num_hidden_layers)
    W = getattr(tc, "sliding_window", None) if tc.model_type == "gemma2" else None
    # check the masks against the rule: prefix block bidirectional, suffix causal, keys masked by padding,
    # sliding layers: causal part restricted to j > i - W
    i_ = torch.arange(L)[:, None]
    j_ = torch.arange(L)[None, :]
    for b in range(B):
        pre = (tt[b] == 0)
        valid = am[b] == 1
        for k, mu in mask_u8.items():
            causal = j_ <= i_
            if k == "sliding_attention":
                causal = causal & (j_ > i_ - W)
            rule = ((pre[:, None] & pre[None, :]) | causal) & valid[None, :]
            real = valid[:, None].expand(L, L)  # rows of real queries only (pad query rows are irrelevant)
            assert torch.equal(mu[b].bool()[real], rule[real]), (name, k, b)

    # ---- gradients
    params = dict(model.named_parameters())
    emb_name = "model.language_model.embed_tokens.weight"
    tied = model.lm_head.weight is params[emb_name]
    dense_names = [emb_name] + ([] if tied else ["lm_head.weight"])
    batch_ids = sorted(set(ids.flatten().tolist()))
    other_rows = sampled_rows(batch_ids)
    row_ids = torch.tensor(batch_ids + other_rows, dtype=torch.int64)
    grads = {}
    full_grads = {}
    frob = {}
    for n, p in params.items():
        assert p.grad is not None, n
        g = p.grad.detach().clone()
        full_grads[n] = g
        if n in dense_names:
            grads[names[n] + "@rows"] = g[row_ids].contiguous()
            grads[names[n] + "@row_ids"] = row_ids.clone()
            frob[names[n]] = math.sqrt(float((g.double() ** 2).sum()))
        else:
            grads[names[n]] = g.contiguous()
    img_row = full_grads[emb_name][IMAGE_TOKEN_ID]
    pad_row = full_grads[emb_name][0]
    global_norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in full_grads.values()))

    # ---- the same in float64: the noise floor of these goldens
    model64 = load_model(mdir, torch.float64)
    fwd64 = {k: (v.double() if v.is_floating_point() else v) for k, v in fwd.items()}
    with true_f64():
        out64 = model64(**fwd64, use_cache=False)
        assert out64.logits.dtype == torch.float64
        l64, _ = bv_loss(out64.logits, ids, labels)
        l64.backward()
    noise = {}
    g64s = {}
    for n, p in model64.named_parameters():
        g64 = p.grad.detach()
        g64s[n] = g64
        d = (full_grads[n].double() - g64).abs().max()
        scale = g64.abs().max()
        # rel = None where the exact gradient is 0 (SigLIP k_proj.bias: softmax is invariant to
        # the q.b_k shift), the f32 value there is pure rounding (~1e-8)
        noise[names[n]] = {"max_abs_diff": f(d), "max_abs_f64": f(scale),
                           "rel": f(d / scale) if scale > 1e-12 else None}
    loss_noise = {"loss_bv_f32_minus_f64": f(loss_bv.double() - l64), "loss_hf_f64": f(out64.loss)}
    # The stored gradients are the float64 ones (rounded to f32): the truth to ~1e-7, so a
    # C++ f32 gradient can be held to 1e-4 of each tensor's largest value (transformers' own
    # f32 autograd is off by up to ~3e-4 of it: grads.f32_vs_f64).
    grads, frob = {}, {}
    for n, g64 in g64s.items():
        g = g64.float()
        if n in dense_names:
            grads[names[n] + "@rows"] = g[row_ids].contiguous()
            frob[names[n]] = math.sqrt(float((g64 ** 2).sum()))
        else:
            grads[names[n]] = g.contiguous()
    full_grads = {n: g64.float() for n, g64 in g64s.items()}
    img_row = full_grads[emb_name][IMAGE_TOKEN_ID]
    pad_row = full_grads[emb_name][0]
    global_norm = math.sqrt(sum(float((g64 ** 2).sum()) for g64 in g64s.values()))

    with true_f64():
        fd = finite_differences(model64, fwd64, ids, labels, names) if name == FD_MODEL else None
    del model64

    # ---- the same loss with the default attention implementation (sdpa for Gemma 1) and, for
    # contrast, without token_type_ids (a causal prefix)
    from transformers import PaliGemmaForConditionalGeneration
    with torch.no_grad():
        m_def = PaliGemmaForConditionalGeneration.from_pretrained(mdir, dtype=torch.float32).train()
        attn_default = m_def.config.text_config._attn_implementation
        loss_default = f(m_def(**fwd, use_cache=False).loss)
        assert abs(loss_default - f(loss_hf)) < 1e-5 * abs(f(loss_hf)), (attn_default, loss_default, f(loss_hf))
        no_tt = {k: v for k, v in fwd.items() if k != "token_type_ids"}
        loss_no_tt = f(model(**no_tt, use_cache=False).loss)
        del m_def

    # ---- suffix logits of example 0
    first, end = filler_range()
    cols = torch.from_numpy(logit_columns(first))
    pos0 = mask[0].nonzero()[:, 0]  # positions t whose logits predict ids[0, t+1]
    suffix_logits = logits[0, pos0].detach()[:, cols].contiguous()

    d = out_root / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    meta_st = {"format": "pt"}
    batch_t = {"pixel_values": pv.contiguous(), "suffix_logits": suffix_logits}
    batch_t.update({f"mask_{k}": v for k, v in mask_u8.items()})
    save_file(batch_t, str(d / "batch.safetensors"), metadata=meta_st)
    save_file(grads, str(d / "grads.safetensors"), metadata=meta_st)

    optim = None
    if name == OPTIM_MODEL:
        optim = optimizer_goldens(model, full_grads, names, global_norm, batch_ids, d)

    per_tok = []
    for b in range(B):
        ts = mask[b].nonzero()[:, 0]
        per_tok.append({"positions": ts.tolist(), "targets": ids[b, ts + 1].tolist(),
                        "nll": [f(x) for x in nll[b, ts]], "logsumexp": [f(x) for x in lse[b, ts]]})
    meta = {
        "model": name,
        "checkpoint_layout": layout,
        "tensor_names": "as in the checkpoint's safetensors files (" + layout + " layout)",
        "versions": {"transformers": __import__("transformers").__version__, "torch": torch.__version__},
        "reference": "transformers PaliGemmaForConditionalGeneration, from_pretrained(dtype=float32, "
                     "attn_implementation='eager') (stored weights upcast exactly), train() mode, use_cache=False",
        "dropout": dropout_info,
        "examples": [{"images": c[0], "prefix": c[1], "suffix": c[2]} for c in cases],
        "processor_call": "PaliGemmaProcessor(text=prefixes, images=images, suffix=suffixes, padding='longest', "
                          "return_tensors='pt'); slow PIL SigLIP processor (hf_utils.make_processor)",
        "padding_side": "left",
        "batch_size": B, "seq_len": L, "num_images_per_example": n_img, "image_tokens_per_image": N,
        "prefix_lengths_incl_image_bos_newline": prefix_lens,
        "suffix_tokens_incl_eos": n_sup,
        "input_ids": ids.tolist(),
        "token_type_ids": tt.tolist(),
        "attention_mask": am.tolist(),
        "labels": labels.tolist(),
        "position_ids": pos[0].tolist(),
        "position_ids_note": "HF ignores the padding: position = index + 1 for every row (left-padded rows "
                             "start their image tokens at npad + 1); RoPE only sees differences",
        "layer_types": layer_types,
        "sliding_window": W,
        "masks": "batch.safetensors mask_<layer type> u8 [B, L, L], 1 = key j visible to query i, as built by "
                 "HF (checked on the rows of real queries: visible(i, j) = attention_mask[j] and "
                 "((tt[i] == 0 and tt[j] == 0) or (j <= i and (full layer or j > i - sliding_window))))",
        "final_logit_softcapping": getattr(tc, "final_logit_softcapping", None),
        "final_logit_softcapping_in_loss": getattr(tc, "final_logit_softcapping", None) is not None,
        "attn_logit_softcapping": getattr(tc, "attn_logit_softcapping", None),
        "definitions": DEFINITIONS,
        "label_smoothing": LABEL_SMOOTHING,
        "loss_hf": f(loss_hf),
        "loss_bv": f(loss_bv),
        "loss_bv_f64_from_f32_logits": f(loss_bv64),
        "loss_bv_ls": f(loss_bv_ls),
        "loss_bv_ls_optax": f(loss_bv_ls_optax),
        "per_example_loss_bv": [f(x) for x in per_ex],
        "per_example_loss_bv_ls": [f(x) for x in per_ex_ls],
        "per_token": per_tok,
        "suffix_logits": "batch.safetensors suffix_logits f32 [T0, C]: logits[0, positions of per_token[0]] at "
                         "the columns suffix_logit_columns (ids 0..2047, 64 filler ids, 256000..257215)",
        "suffix_logit_columns": cols.tolist(),
        "grads": {
            "file": "grads.safetensors",
            "of": "loss_bv",
            "tied_lm_head": tied,
            "dense_rows_stored_for": [names[n] for n in dense_names],
            "row_ids": row_ids.tolist(),
            "row_ids_are": f"the rows of '<name>@rows' (ids as JSON: our safetensors reader has no integer "
                           f"dtypes): the {len(batch_ids)} distinct ids of input_ids (sorted), then "
                       f"{N_SAMPLED_ROWS} other ids sampled without replacement by "
                       f"numpy.random.default_rng({ROW_SAMPLE_SEED}).choice per stratum {ROW_STRATA} "
                       "(each stratum sorted)",
            "batch_ids": batch_ids,
            "frobenius_norm_full": frob,
            "global_norm_all_params": global_norm,
            "embedding_row_of_image_token_is_zero_from_input_side":
                "yes (masked_scatter overwrites it)" if not tied else "n/a (tied: output side contributes)",
            "image_token_row_max_abs": f(img_row.abs().max()),
            "pad_row_max_abs": f(pad_row.abs().max()),
            "f32_vs_f64": noise,
        },
        "loss_f32_vs_f64": loss_noise,
        "loss_hf_default_attn_implementation": {"attn_implementation": attn_default, "loss_hf": loss_default},
        "loss_hf_without_token_type_ids": {"loss_hf": loss_no_tt,
                                           "note": "no block overlay: the prefix is causal; shown for contrast"},
    }
    if not tied:
        assert f(img_row.abs().max()) == 0.0
    if fd is not None:
        meta["finite_differences_f64"] = fd
    if optim is not None:
        meta["optimizer"] = optim
    (d / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    worst = max(v["rel"] for v in noise.values() if v["rel"] is not None)
    log(f"[grad] {name}: B={B} L={L} suffix tokens {n_sup} loss_hf={f(loss_hf):.6f} loss_bv={f(loss_bv):.6f} "
        f"ls={f(loss_bv_ls):.6f} |g|={global_norm:.4f} f32-vs-f64 grad rel max {worst:.2e}")
    return meta


def finite_differences(model64, fwd64, ids, labels, names) -> list[dict]:
    """central differences in float64 on a few scalar entries vs autograd (grads already in .grad)."""
    params = dict(model64.named_parameters())
    picks = [
        ("model.multi_modal_projector.linear.weight", (3, 5)),
        ("model.vision_tower.encoder.layers.0.self_attn.q_proj.weight", (1, 2)),
        ("model.language_model.layers.1.input_layernorm.weight", (7,)),
        ("model.language_model.layers.0.self_attn.k_proj.weight", (4, 9)),
        ("model.language_model.embed_tokens.weight", (int(ids[0, -2]), 3)),
    ]
    h = 1e-3
    res = []
    with torch.no_grad():
        for n, idx in picks:
            p = params[n]
            ag = float(p.grad[idx])
            old = p[idx].item()
            vals = {}
            for k in (-2, -1, 1, 2):
                p[idx] = old + k * h
                vals[k] = float(bv_loss(model64(**fwd64, use_cache=False).logits, ids, labels)[0])
            p[idx] = old
            # 4-point central difference, truncation error O(h^4)
            fdv = (-vals[2] + 8 * vals[1] - 8 * vals[-1] + vals[-2]) / (12 * h)
            rel = abs(fdv - ag) / max(abs(ag), 1e-12)
            log(f"   FD f64 {names[n]}{list(idx)}: autograd {ag:+.10e} fd {fdv:+.10e} rel err {rel:.2e}")
            assert rel < 1e-5, (n, idx, ag, fdv)
            res.append({"tensor": names[n], "index": list(idx), "autograd_f64": ag, "central_difference_f64": fdv,
                        "h": h, "stencil": "(-L(p+2h) + 8 L(p+h) - 8 L(p-h) + L(p-2h)) / (12 h)",
                        "rel_err": rel})
    return res


# ----------------------------------------------------------------------------- optimizers

LR_SGD = 0.1
ADAM = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.1)
CLIP = 1.0
OPTIM_TENSORS = [
    "model.language_model.layers.0.self_attn.q_proj.weight",
    "model.language_model.layers.0.input_layernorm.weight",
    "model.vision_tower.encoder.layers.0.self_attn.k_proj.weight",
    "model.multi_modal_projector.linear.weight",
    "model.multi_modal_projector.linear.bias",
]


def bv_decay_mask(n: str) -> bool:
    """big_vision's default wd_mults [('.*/kernel$', 1.0)] mapped to HF names: the kernels are the
    SigLIP Dense/Conv weights (q/k/v/out, fc1/fc2, patch embedding conv) and the projector (img/head/kernel);
    the Gemma parameters are named w / gating_einsum / linear / input_embedding / scale in big_vision,
    so no LM parameter is decayed; no bias, LayerNorm scale, position embedding either."""
    if n.startswith("model.multi_modal_projector.") and n.endswith(".weight"):
        return True
    if n.startswith("model.vision_tower."):
        return n.endswith(".weight") and ("self_attn." in n or ".mlp." in n or "patch_embedding" in n)
    return False


def optimizer_goldens(model, grads: dict, names: dict, global_norm: float, batch_ids: list[int], d: Path) -> dict:
    params = {n: p.detach().double() for n, p in model.named_parameters()}
    g = {n: v.double() for n, v in grads.items()}
    scale = CLIP / global_norm if global_norm > CLIP else 1.0  # optax.clip_by_global_norm
    gc = {n: v * scale for n, v in g.items()}
    lr, b1, b2, eps, wd = (ADAM[k] for k in ("lr", "b1", "b2", "eps", "wd"))
    t = 1

    def adam_dir(gg):
        m = (1 - b1) * gg
        v = (1 - b2) * gg * gg
        mh = m / (1 - b1 ** t)
        vh = v / (1 - b2 ** t)
        return mh / (vh.sqrt() + eps)

    variants = {
        "sgd": {n: params[n] - LR_SGD * g[n] for n in params},
        "sgd_clip": {n: params[n] - LR_SGD * gc[n] for n in params},
        "adamw_bv_clip": {n: params[n] - (lr * adam_dir(gc[n]) + (wd * params[n] if bv_decay_mask(n) else 0.0))
                          for n in OPTIM_TENSORS + ["model.language_model.embed_tokens.weight"]},
        "adamw_torch_clip": {n: (params[n] * (1 - lr * wd) if params[n].ndim >= 2 else params[n])
                             - lr * adam_dir(gc[n])
                             for n in OPTIM_TENSORS + ["model.language_model.embed_tokens.weight"]},
    }
    # cross-check the formulas against torch.optim on the f32 parameters
    tchecks = {}
    for vname in ("sgd", "sgd_clip", "adamw_torch_clip"):
        ps = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
        nm = [n for n, _ in model.named_parameters()]
        for p, n in zip(ps, nm):
            p.grad = grads[n].clone()
        if vname.endswith("clip"):
            tn = torch.nn.utils.clip_grad_norm_(ps, CLIP)
            assert abs(float(tn) - global_norm) < 1e-4 * global_norm
        if vname.startswith("sgd"):
            opt = torch.optim.SGD(ps, lr=LR_SGD)
        else:
            opt = torch.optim.AdamW([{"params": [p for p in ps if p.ndim >= 2], "weight_decay": wd},
                                     {"params": [p for p in ps if p.ndim < 2], "weight_decay": 0.0}],
                                    lr=lr, betas=(b1, b2), eps=eps)
        opt.step()
        worst = 0.0
        for p, n in zip(ps, nm):
            if n in variants[vname]:
                worst = max(worst, float((p.detach().double() - variants[vname][n]).abs().max()))
        tchecks[vname] = worst
        log(f"   optimizer {vname}: max |torch.optim (f32) - formula (f64)| = {worst:.2e}")
        assert worst < 1e-5, (vname, worst)

    rows = torch.tensor(batch_ids, dtype=torch.int64)
    out = {}
    emb = "model.language_model.embed_tokens.weight"
    for vname, upd in variants.items():
        for n in OPTIM_TENSORS:
            out[f"{vname}/{names[n]}"] = upd[n].float().contiguous()
        out[f"{vname}/{names[emb]}@rows"] = upd[emb][rows].float().contiguous()
    save_file(out, str(d / "optim.safetensors"), metadata={"format": "pt"})
    return {
        "file": "optim.safetensors: '<variant>/<tensor name>' = the tensor after one step (f32, computed in f64 "
                "from the f32 parameters and the stored loss_bv gradients); the embedding only at the batch ids "
                "('<variant>/<name>@rows', at the ids optimizer.row_ids of this JSON)",
        "tensors": [names[n] for n in OPTIM_TENSORS] + [names[emb] + "@rows"],
        "row_ids": batch_ids,
        "gradients": "loss_bv gradients of this model (grads.safetensors; the full embedding gradient is used)",
        "global_norm": global_norm,
        "global_norm_definition": "sqrt(sum over all unique parameters (the tied embedding once) of sum(g^2))",
        "clip": {"max_norm": CLIP, "scale": scale,
                 "formula": "optax.clip_by_global_norm: g_c = g if |g| < max_norm else g / |g| * max_norm "
                            "(torch.nn.utils.clip_grad_norm_ uses max_norm / (|g| + 1e-6): differs by ~1e-6 relative)"},
        "variants": {
            "sgd": f"p1 = p - {LR_SGD} * g",
            "sgd_clip": f"p1 = p - {LR_SGD} * g_c",
            "adamw_bv_clip": (
                "big_vision chain (optax.py make): clip_by_global_norm(1.0) -> scale_by_adam(b1, b2, eps, "
                "eps_root=0) -> scale(lr) -> add_decayed_weights(wd, mask) -> scale_by_schedule(s) -> scale(-1). "
                "Step t = 1 (count 0 -> 1): m = (1-b1) g_c, v = (1-b2) g_c^2, m^ = m / (1-b1^t), v^ = v / (1-b2^t), "
                "p1 = p - s * (lr * m^ / (sqrt(v^) + eps) + wd * mask * p), with the schedule factor s = 1 here "
                "(big_vision's cosine schedule with linear warmup would give s = 0 at step 0). NOTE the decay is "
                "NOT multiplied by lr (big_vision's config.wd is an absolute per-step factor, e.g. 3e-7 in "
                "transfers/forkme.py). mask = big_vision default wd_mults '.*/kernel$': SigLIP q/k/v/out_proj, "
                "fc1, fc2, patch-embedding conv weights and the projector weight; no Gemma parameter (they are "
                "named w/gating_einsum/linear/input_embedding/scale there), no bias, no norm, no position "
                f"embedding. lr {lr}, b1 {b1}, b2 {b2}, eps {eps}, wd {wd}"),
            "adamw_torch_clip": (
                "torch.optim.AdamW semantics (checked against torch.optim.AdamW): p1 = p * (1 - lr * wd * mask) - "
                "lr * m^ / (sqrt(v^) + eps) with the same m^, v^ from g_c; mask = ndim >= 2 (all matrices, "
                f"including the embedding, the patch conv and the position embedding). lr {lr}, b1 {b1}, "
                f"b2 {b2}, eps {eps}, wd {wd}"),
        },
        "bv_decay_mask": sorted(names[n] for n in params if bv_decay_mask(n)),
        "torch_optim_check_max_abs_diff": tchecks,
    }


# ----------------------------------------------------------------------------- main

def generate(models: list[str], out_root: Path) -> dict:
    metas = {}
    for name in models:
        metas[name] = run_model(name, out_root)
    return metas


def file_hashes(root: Path, models: list[str]) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256(p) for m in models for p in sorted((root / m).iterdir())}


def main(argv: list[str]) -> None:
    set_threads()
    selfcheck = "--selfcheck" in argv
    models = [a for a in argv if not a.startswith("--")] or list(BATCHES)
    metas = generate(models, OUT_DIR)
    hashes = file_hashes(OUT_DIR, models)
    total = sum((OUT_DIR / k).stat().st_size for k in hashes)
    for k, v in hashes.items():
        log(f"   {v}  {k}  ({(OUT_DIR / k).stat().st_size} bytes)")
    log(f"[grad] {len(hashes)} files, {total / 1e6:.2f} MB")
    log("[grad] model                loss_hf      loss_bv      loss_bv_ls")
    for n, m in metas.items():
        log(f"       {n:20s} {m['loss_hf']:.6f}  {m['loss_bv']:.6f}  {m['loss_bv_ls']:.6f}")
    if selfcheck:
        with tempfile.TemporaryDirectory() as td:
            generate(models, Path(td))
            again = file_hashes(Path(td), models)
        assert again == hashes, [k for k in hashes if again.get(k) != hashes[k]]
        log("[grad] selfcheck: regenerated outputs are byte-identical")


if __name__ == "__main__":
    main(sys.argv[1:])
