#!/usr/bin/env python
"""Golden loss and gradients of SigLIP contrastive pretraining (issue 6, point 2a).

Independent reference: transformers' own SiglipModel (vision tower with the
SiglipMultiheadAttentionPoolingHead, SiglipTextModel pooled at the LAST token, the
sigmoid loss of `return_loss=True`), float64, eager attention, differentiated by
PyTorch autograd. A tiny random model (every parameter, including LayerNorm weights and
biases, perturbed away from its init so that a swapped weight/bias or a wrong row is
visible) and a batch of 4 (image, token ids) pairs, all captions of one length (the HF
batch is one tensor; the C++ side runs each caption at its own length, which is the same
computation when the lengths agree).

Writes tests/fixtures/siglip_pretrain/:
  model.safetensors  every SiglipModel parameter (f32, HF names)
  grads.safetensors  d loss / d parameter (f32, the same names)
  batch.safetensors  pixel_values f32 [4, 3, 14, 14]
  meta.json          configs, token ids, the loss, the logits, versions

Usage: .venv-golden/bin/python tools/golden/make_siglip_pretrain_golden.py
"""

import json
import math
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipModel

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "siglip_pretrain"

VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, num_channels=3,
              image_size=14, patch_size=7, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh")
TEXT = dict(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=8, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh", projection_size=16,
            pad_token_id=0, bos_token_id=2, eos_token_id=1)
BATCH, SEQ, EOS = 4, 6, 1


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = SiglipConfig(vision_config=VISION, text_config=TEXT)
    config._attn_implementation = "eager"
    model = SiglipModel(config).double().train()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64))
        model.logit_scale.fill_(1.0)  # moderate t' and b: no gradient vanishes in the sigmoid
        model.logit_bias.fill_(-1.5)
    pixels = torch.rand(BATCH, 3, VISION["image_size"], VISION["image_size"], generator=g, dtype=torch.float64) * 2 - 1
    ids = torch.randint(2, TEXT["vocab_size"], (BATCH, SEQ), generator=g)
    ids[:, -1] = EOS  # every caption ends with <eos>, the pooled token
    out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
    out.loss.backward()

    OUT.mkdir(parents=True, exist_ok=True)
    params = {n: p.detach().float().contiguous() for n, p in model.named_parameters()}
    grads = {n: p.grad.detach().float().contiguous() for n, p in model.named_parameters()}
    save_file(params, str(OUT / "model.safetensors"), metadata={"format": "pt"})
    save_file(grads, str(OUT / "grads.safetensors"), metadata={"format": "pt"})
    save_file({"pixel_values": pixels.float().contiguous()}, str(OUT / "batch.safetensors"), metadata={"format": "pt"})
    meta = {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "vision_config": VISION, "text_config": TEXT,
        "input_ids": ids.tolist(),
        "loss": out.loss.item(),
        "logits_per_image": out.logits_per_image.detach().flatten().tolist(),
    }
    (OUT / "meta.json").write_text(json.dumps(meta) + "\n")
    print(f"wrote {OUT}: loss {out.loss.item():.6f}, {len(params)} tensors, "
          f"{sum(p.numel() for p in params.values())} values")


if __name__ == "__main__":
    main()
