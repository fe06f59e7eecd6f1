"""Golden gradients for the mask VQ-VAE trainer (src/seg/mask_vae.cpp, `paligemma vae-train`).

The VQ-VAE of make_vae_golden.py (the same PyTorch modules, the vae-oid.npz key layout) at tiny
widths with the trainer's encoder widths (C/8, C/4, C/2, C), in float64, on a fixed batch of
antialiased masks. The loss is the one the trainer minimises (van den Oord et al. 2017):
  z_e = encoder(2 (m - 0.5)), k = argmin |z_e - e|^2, decoder input z_e + (e_k - z_e).detach()
  loss = mean (decoder - 2 (m - 0.5))^2 + mean (z_e.detach() - e_k)^2 + 0.25 mean (z_e - e_k.detach())^2
and autograd gives every parameter's gradient.

Writes tests/fixtures/vae_train/grad_case.npz (np.savez_compressed): the weights under their
vae-oid keys (f4), "masks" (B,64,64 f4), "codes" (B,16 i8), "loss" (f8: total, reconstruction,
codebook, commitment) and "grad/<key>" (f4, rounded from f8) for every weight. The C++ reads the f4 weights;
torch computes from the same f4 values widened to f8.
Run: /work/main/.venv-golden/bin/python tools/golden/make_vae_grad_golden.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_vae_golden as vae  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "vae_train" / "grad_case.npz"
C, D, K, BETA = 8, 4, 12, 0.25


def masks():
    """Three 64x64 masks in [0, 1] with soft (supersampled) edges: a disc, a ring, a triangle."""
    s = 4
    yy, xx = (np.mgrid[0:64 * s, 0:64 * s].astype(np.float64) + 0.5) / s
    disc = ((yy - 30) ** 2 + (xx - 35) ** 2) < 22 ** 2
    r2 = (yy - 32) ** 2 + (xx - 32) ** 2
    ring = (r2 < 28 ** 2) & (r2 > 15 ** 2)
    tri = (yy > 6) & (yy < 58) & (np.abs(xx - 32) < (yy - 6) * 0.55)
    out = [m.reshape(64, s, 64, s).mean(axis=(1, 3)) for m in (disc, ring, tri)]
    return np.stack(out).astype(np.float32)


def loss_parts(model, m64, straight_through=True):
    x = model.encoder(2.0 * (m64[:, None] - 0.5))
    z = x.permute(0, 2, 3, 1).reshape(x.shape[0], 16, D)
    e = model.embedding
    dist = (z.detach()[..., None, :] - e[None, None]).pow(2).sum(-1)
    codes = dist.argmin(-1)
    s = torch.sort(dist, dim=-1).values
    gap = (s[..., 1] - s[..., 0]).min().item()
    zq = e[codes]
    dec_in = z + (zq - z).detach() if straight_through else zq.detach()
    logits = model.decoder(dec_in.reshape(-1, 4, 4, D).permute(0, 3, 1, 2))[:, 0]
    recon = ((logits - 2.0 * (m64 - 0.5)) ** 2).mean()
    codebook = ((z.detach() - zq) ** 2).mean()
    commit = ((z - zq.detach()) ** 2).mean()
    return recon + codebook + BETA * commit, recon, codebook, commit, codes, gap


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    vae.K, vae.D, vae.C, vae.ENC = K, D, C, [C // 8, C // 4, C // 2, C]
    model = vae.VQVAE()
    vae.init(model)
    m64 = torch.from_numpy(masks())
    model = model.double()
    with torch.no_grad():
        x = model.encoder(2.0 * (m64.double()[:, None] - 0.5))
        z = x.permute(0, 2, 3, 1).reshape(-1, D)
    # Codes near the encodings (as after the trainer's data init), so several cells share one;
    # the first draw whose nearest codes are clear of ties (the C++ argmin runs on f4 encodings).
    for seed in range(100):
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(z.shape[0], generator=g)[:K]
        emb = (z[pick] + 0.5 * z.std() * torch.randn(K, D, generator=g, dtype=torch.float64)).float().double()
        with torch.no_grad():
            model.embedding.copy_(emb)
        total, recon, codebook, commit, codes, gap = loss_parts(model, m64.double())
        if gap > 1e-3:
            break
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    sd["_vq_vae._embedding"] = sd.pop("embedding")
    with torch.no_grad():  # the f8 model holds exactly the f4 values
        for k, v in model.state_dict().items():
            key = "_vq_vae._embedding" if k == "embedding" else k
            v.copy_(torch.from_numpy(sd[key].astype(np.float64)))
    total, recon, codebook, commit, codes, gap = loss_parts(model, m64.double())
    print("loss %.6f (recon %.6f, codebook %.6f, commitment %.6f); codes used %d of %d; min gap %.3g" %
          (total.item(), recon.item(), codebook.item(), commit.item(), len(set(codes.flatten().tolist())), K, gap))
    assert gap > 1e-4, "a near tie: the C++ codes could legitimately differ"
    model.zero_grad()
    total.backward()
    out = dict(sd)
    out["masks"] = m64.numpy()
    out["codes"] = codes.numpy().astype(np.int64)
    out["loss"] = np.array([total.item(), recon.item(), codebook.item(), commit.item()], np.float64)
    for k, p in model.named_parameters():
        key = "_vq_vae._embedding" if k == "embedding" else k
        out["grad/" + key] = p.grad.numpy().astype(np.float32)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print("wrote %s (%.0f KB, %d arrays)" % (OUT, OUT.stat().st_size / 1024, len(out)))


if __name__ == "__main__":
    main()
