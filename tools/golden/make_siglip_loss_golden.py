#!/usr/bin/env python
"""Golden values of SigLIP's sigmoid contrastive loss and its gradients (issue 6, the vision
tower's contrastive pretraining).

Independent reference: the loss as the SigLIP paper's Algorithm 1 writes it (Zhai et al.
2023, "Sigmoid Loss for Language Image Pre-Training"; big_vision's `siglip` loss), in
PyTorch float64, differentiated by autograd:

    zimg = normalize(img); ztxt = normalize(txt)
    logits = zimg @ ztxt.T * exp(t_prime) + b
    labels = 2 * eye(n) - 1
    loss = -sum(logsigmoid(labels * logits)) / n

Writes tests/fixtures/siglip_loss/golden.json: for a few cases (batch n, width dim, t', b,
including the paper's initialisation t' = log 10, b = -10) the inputs, the loss and
d loss / d (img, txt, t', b).

Usage: .venv-golden/bin/python tools/golden/make_siglip_loss_golden.py
"""

import json
import math
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "siglip_loss" / "golden.json"


def case(n: int, dim: int, t_prime: float, b: float, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n, dim, generator=g, dtype=torch.float64).requires_grad_()
    txt = torch.randn(n, dim, generator=g, dtype=torch.float64).requires_grad_()
    tp = torch.tensor(t_prime, dtype=torch.float64, requires_grad=True)
    bb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    zimg = torch.nn.functional.normalize(img, dim=-1)
    ztxt = torch.nn.functional.normalize(txt, dim=-1)
    logits = zimg @ ztxt.T * tp.exp() + bb
    labels = 2 * torch.eye(n, dtype=torch.float64) - 1
    loss = -torch.nn.functional.logsigmoid(labels * logits).sum() / n
    loss.backward()
    return {"n": n, "dim": dim, "t_prime": t_prime, "b": b, "img": img.detach().flatten().tolist(),
            "txt": txt.detach().flatten().tolist(), "loss": loss.item(), "d_img": img.grad.flatten().tolist(),
            "d_txt": txt.grad.flatten().tolist(), "d_t_prime": tp.grad.item(), "d_b": bb.grad.item()}


def main() -> None:
    cases = [case(5, 7, math.log(10.0), -10.0, 1), case(8, 16, 0.3, 0.5, 2), case(3, 4, 2.5, -2.0, 3)]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"torch": torch.__version__, "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
