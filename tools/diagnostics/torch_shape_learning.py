#!/usr/bin/env python3
"""How fast a SigLIP tower learns the world's shapes, in PyTorch: an independent check that the
slow shape learning of our C++ runs is the architecture's and not our trainer's
(docs/WORLD_MODEL.md, "what the tower knows").

A transformers SiglipVisionModel of the world model's tower (or a small CNN, --arch cnn), a
linear head on the mean of its output tokens, cross-entropy on the shape of single-object
world scenes, Adam, batch 32, global-norm clipping at 1 (all parameters). Single seed per run. Prints validation accuracy.

  build/paligemma world --out W --seed 77 --images 6000 --size 112 --tasks answer \
      --max-objects 1 --question-types shape --questions 1 --text-probability 0
  build/paligemma world --out W --seed 777777 --images 200 --size 112 --tasks answer \
      --max-objects 1 --question-types shape --questions 1 --text-probability 0 --split-name val
  .venv-golden/bin/python tools/diagnostics/torch_shape_learning.py W --lr 3e-4 --init mimetic
"""
import argparse, json
import numpy as np
import torch
from PIL import Image
from transformers import SiglipVisionConfig, SiglipVisionModel

ap = argparse.ArgumentParser()
ap.add_argument("world")
ap.add_argument("--arch", choices=["vit", "cnn"], default="vit")
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--width", type=int, default=192)
ap.add_argument("--heads", type=int, default=3)
ap.add_argument("--patch", type=int, default=14)
ap.add_argument("--size", type=int, default=112)
ap.add_argument("--lr", type=float, default=3e-4)
ap.add_argument("--steps", type=int, default=1000)
ap.add_argument("--every", type=int, default=100)
ap.add_argument("--init", choices=["transformers", "mimetic", "sincos2d", "mimetic+sincos2d"], default="transformers")
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(a.seed)

def load(split):
    recs = [json.loads(l) for l in open(f"{a.world}/{split}.jsonl")]
    x = np.stack([np.asarray(Image.open(f"{a.world}/{r['image']}").convert("RGB").resize((a.size, a.size), Image.BICUBIC),
                             np.float32) / 127.5 - 1 for r in recs]).transpose(0, 3, 1, 2)
    return torch.from_numpy(x.copy()), [r["suffix"] for r in recs]
X, names = load("train")
Xv, vnames = load("val")
labels = sorted(set(names))
Y, Yv = torch.tensor([labels.index(n) for n in names]), torch.tensor([labels.index(n) for n in vnames])

if a.arch == "cnn":
    c = torch.nn
    net = c.Sequential(c.Conv2d(3, 32, 3, 2, 1), c.ReLU(), c.Conv2d(32, 64, 3, 2, 1), c.ReLU(), c.Conv2d(64, 64, 3, 2, 1),
                       c.ReLU(), c.Conv2d(64, 64, 3, 2, 1), c.ReLU(), c.AdaptiveMaxPool2d(1), c.Flatten(), c.Linear(64, len(labels)))
    params, forward = list(net.parameters()), net
else:
    cfg = SiglipVisionConfig(hidden_size=a.width, intermediate_size=4 * a.width, num_hidden_layers=a.layers,
                             num_attention_heads=a.heads, image_size=a.size, patch_size=a.patch, vision_use_head=False)
    tower = SiglipVisionModel(cfg).train()
    vm = tower.vision_model if hasattr(tower, "vision_model") else tower
    d, dh = a.width, a.width // a.heads
    with torch.no_grad():
        if "mimetic" in a.init:  # Trockman & Kolter 2023, Algorithm 1, as `paligemma init --vision-attention mimetic`
            def halves(m, rank):
                u, s, vt = torch.linalg.svd(m)
                return u[:, :rank] * s[:rank].sqrt(), vt[:rank].T * s[:rank].sqrt()
            for layer in vm.encoder.layers:
                at = layer.self_attn
                for h in range(a.heads):  # q/k per head, rank head_dim
                    s = slice(h * dh, (h + 1) * dh)
                    p, q = halves(0.7 * torch.randn(d, d) / d ** 0.5 + 0.7 * torch.eye(d), dh)
                    at.q_proj.weight[s], at.k_proj.weight[s] = p.T, q.T
                p, q = halves(0.4 * torch.randn(d, d) / d ** 0.5 - 0.4 * torch.eye(d), d)  # v/out: the layer, full rank
                at.v_proj.weight[:], at.out_proj.weight[:] = p.T, q
        if "sincos2d" in a.init:  # big_vision's posemb_sincos_2d
            g = a.size // a.patch
            y, x = np.mgrid[:g, :g]
            om = 1.0 / 10000 ** (np.arange(d // 4) / (d // 4 - 1))
            y, x = y.flatten()[:, None] * om, x.flatten()[:, None] * om
            pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], 1)
            vm.embeddings.position_embedding.weight.copy_(torch.tensor(pe, dtype=torch.float32))
    head = torch.nn.Linear(a.width, len(labels))
    params = list(tower.parameters()) + list(head.parameters())
    forward = lambda x: head(tower(pixel_values=x).last_hidden_state.mean(1))
opt = torch.optim.Adam(params, lr=a.lr)
for step in range(1, a.steps + 1):
    idx = torch.randint(0, len(X), (32,))
    loss = torch.nn.functional.cross_entropy(forward(X[idx]), Y[idx])
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if step % a.every == 0:
        with torch.no_grad():
            acc = float((forward(Xv).argmax(1) == Yv).float().mean())
        print(f"step {step} train loss {float(loss):.3f} val accuracy {acc:.3f}", flush=True)
