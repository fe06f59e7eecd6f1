"""FLOP and byte counts of PaliGemma inference, from the model's config.json.

Counted: matrix multiplications only, 2 FLOPs per multiply-add (norms, activations,
softmax, rotary, soft-caps and the embedding lookup are < 1% and ignored).

Vision (per image, N = (image_size / patch)^2 tokens, width Dv, MLP Iv, Lv layers):
    linear     2 * N * (Lv * (4 Dv^2 + 2 Dv Iv) + 3 P^2 Dv  [patch embedding]  + Dv D  [projector])
    attention  Lv * 4 * N^2 * Dv                 (Q K^T and A V, N x N, bidirectional)

Text prefill over T prompt tokens (image + <bos> + prompt + "\\n"; width D, MLP I,
Lt layers, nq / nkv heads of hd):
    params per layer  p = D hd (2 nq + 2 nkv) + 3 D I          (q, k, v, o; gate, up, down)
    linear     2 * T * Lt * p  +  2 * D * V * logits_rows      (lm head on the last row only,
                                                               as `generate` and our engine do)
    attention  Lt * 4 * T^2 * nq * hd                          (the whole prompt is the
                                                               bidirectional prefix: full T x T)

Decode, one token at context length c:
    FLOPs           2 * (Lt * p + D V) + Lt * 4 * c * nq * hd
    weight bytes    (Lt * p + D V) * bytes_per_param          (every decoder matrix plus the
                                                               tied embedding as output layer)
    KV-cache bytes  Lt * 2 * c * nkv * hd * kv_bytes          (reported apart; small at 224 px)

Hand numbers for PaliGemma 2 3B-224 (checked by `python bench/model_costs.py`):
vision 0.22 TFLOP, 260-token prefill 1.07 TFLOP, together ~1.29 TFLOP; a decoded
token reads 2.02 G decoder + 0.59 G embedding = ~2.62 G parameters.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Dims:
    """The sizes the costs depend on (config.json values, with transformers' defaults)."""
    model_type: str          # gemma | gemma2
    image_size: int
    patch_size: int
    image_tokens: int
    vision_hidden: int
    vision_intermediate: int
    vision_layers: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    def to_dict(self) -> dict:
        return asdict(self)


def dims_from_config(cfg: dict) -> Dims:
    """Dims of a PaliGemma config.json (dict).  Defaults as transformers': SigLIP
    image_size 224, Gemma head_dim 256."""
    t, v = cfg["text_config"], cfg["vision_config"]
    image_size, patch = v.get("image_size", 224), v.get("patch_size", 14)
    return Dims(
        model_type=t.get("model_type", "gemma"), image_size=image_size, patch_size=patch,
        image_tokens=(image_size // patch) ** 2, vision_hidden=v["hidden_size"],
        vision_intermediate=v["intermediate_size"], vision_layers=v["num_hidden_layers"],
        hidden=t["hidden_size"], intermediate=t["intermediate_size"], layers=t["num_hidden_layers"],
        heads=t["num_attention_heads"], kv_heads=t.get("num_key_value_heads", t["num_attention_heads"]),
        head_dim=t.get("head_dim", 256), vocab=t.get("vocab_size", 257216),
    )


def load_dims(model_dir: Path) -> Dims:
    return dims_from_config(json.loads((Path(model_dir) / "config.json").read_text()))


def text_layer_params(d: Dims) -> int:
    return d.hidden * d.head_dim * (2 * d.heads + 2 * d.kv_heads) + 3 * d.hidden * d.intermediate


def decoder_params(d: Dims) -> int:
    """Decoder matrices (all layers), without the embedding."""
    return d.layers * text_layer_params(d)


def vision_params(d: Dims) -> int:
    """Vision matrices incl. patch embedding and projector (biases, norms, positions left out)."""
    D, I = d.vision_hidden, d.vision_intermediate
    return d.vision_layers * (4 * D * D + 2 * D * I) + 3 * d.patch_size ** 2 * D + D * d.hidden


def vision_flops(d: Dims, images: int = 1) -> float:
    N, D = d.image_tokens, d.vision_hidden
    return images * (2.0 * N * vision_params(d) + d.vision_layers * 4.0 * N * N * D)


def prefill_flops(d: Dims, tokens: int, logits_rows: int = 1) -> float:
    T = tokens
    return (2.0 * T * decoder_params(d) + 2.0 * d.hidden * d.vocab * logits_rows
            + d.layers * 4.0 * T * T * d.heads * d.head_dim)


def decode_flops(d: Dims, context: int) -> float:
    return 2.0 * decode_params_read(d) + d.layers * 4.0 * context * d.heads * d.head_dim


def decode_params_read(d: Dims) -> int:
    """Parameters read per decoded token: every decoder matrix + the tied embedding as output layer."""
    return decoder_params(d) + d.hidden * d.vocab


def decode_weight_bytes(d: Dims, bytes_per_param: float) -> float:
    return decode_params_read(d) * bytes_per_param


def kv_cache_bytes(d: Dims, context: int, kv_bytes: float = 4) -> float:
    return d.layers * 2.0 * context * d.kv_heads * d.head_dim * kv_bytes


def prompt_tokens(d: Dims, prompt_text_tokens: int = 4) -> int:
    """Image tokens + <bos> + prompt pieces + "\\n" ("caption en" = 2 pieces -> 4)."""
    return d.image_tokens + prompt_text_tokens


def self_check() -> None:
    """Hand numbers for PaliGemma 2 3B-224 (see the module docstring)."""
    d = Dims(model_type="gemma2", image_size=224, patch_size=14, image_tokens=256, vision_hidden=1152,
             vision_intermediate=4304, vision_layers=27, hidden=2304, intermediate=9216, layers=26, heads=8,
             kv_heads=4, head_dim=256, vocab=257216)
    T = prompt_tokens(d)
    assert T == 260
    # vision: 27 * (4 * 1152^2 + 2 * 1152 * 4304) = 410.9 M (+0.68 M patch, 2.65 M projector)
    assert abs(vision_params(d) / 1e6 - 414.2) < 0.5, vision_params(d)
    assert abs(vision_flops(d) / 1e12 - 0.2203) < 0.002, vision_flops(d)
    # decoder: 26 * (2304 * 256 * 24 + 3 * 2304 * 9216) = 26 * 77.86 M = 2.024 G
    assert abs(decoder_params(d) / 1e9 - 2.024) < 0.002, decoder_params(d)
    pf = prefill_flops(d, T)
    assert abs(pf / 1e12 - 1.068) < 0.005, pf
    total = vision_flops(d) + pf
    assert 1.25e12 < total < 1.35e12, total  # "~1.3 TFLOP for image + 260-token prefill"
    p = decode_params_read(d)
    assert abs(p / 1e9 - 2.617) < 0.005, p  # "~2.6 G params per decoded token incl. the tied embedding"
    assert abs(decode_weight_bytes(d, 2) / 1e9 - 5.23) < 0.01
    assert abs(kv_cache_bytes(d, 260) / 1e6 - 55.4) < 0.1
    print(f"model_costs self-check OK: PG2 3B-224 vision {vision_flops(d) / 1e12:.3f} TFLOP, "
          f"{T}-token prefill {pf / 1e12:.3f} TFLOP, total {total / 1e12:.3f} TFLOP; "
          f"decode reads {p / 1e9:.3f} G params ({decode_weight_bytes(d, 2) / 1e9:.2f} GB in bf16) per token")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        dd = load_dims(Path(sys.argv[1]))
        print(json.dumps(dd.to_dict(), indent=2))
        print(f"vision {vision_flops(dd) / 1e12:.3f} TFLOP, prefill({prompt_tokens(dd)}) "
              f"{prefill_flops(dd, prompt_tokens(dd)) / 1e12:.3f} TFLOP, decode reads "
              f"{decode_params_read(dd) / 1e9:.3f} G params per token")
    else:
        self_check()
