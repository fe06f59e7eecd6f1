"""Golden data for the segmentation mask codec (big_vision's VQ-VAE, `vae-oid.npz` layout).

An independent PyTorch implementation of the published architecture (google-research/big_vision
5f95305c: evaluators/proj/paligemma/transfers/segmentation.py for the decoder, which is a flax
port of a PyTorch model whose state dict vae-oid.npz is; pp/proj/paligemma/segmentation.py for
the encoder), with random weights, saved in the vae-oid key layout. Channel counts are smaller
than the real file (128 there) to keep the fixtures small; the C++ reads every shape.

Writes tests/fixtures/vae/:
  vae_stored.npz (np.savez), vae_deflated.npz (np.savez_compressed): the same weights
  dec_codes.npy (N,16 i8), dec_logits.npy (N,64,64 f4)        decoder records
  enc_masks.npy (M,64,64 f4), enc_codes.npy (M,16 i8)          encoder records
  full_mask.npy (H,W u1, 0/255), full_box.npy (4 i8: y1 x1 y2 x2),
  full_mask64.npy (64,64 f4: crop + antialiased bilinear, torch), full_codes.npy (16 i8),
  full_logits.npy (64,64 f4), full_roundtrip.npy (H,W u1: PIL BILINEAR into the box, > 0),
  full_iou.npy (f8, IoU of full_roundtrip with full_mask)
  box_logits.npy (64,64 f4), box_small.npy / box_large.npy (4 i8), inbox_small.npy /
  inbox_large.npy (H,W u1): mask_in_box through PIL, shrinking and enlarging
  bad_*.npz: small malformed archives for the error tests
Run: .venv-golden/bin/python tools/golden/make_vae_golden.py
(The .npy records are deterministic; numpy stamps the zip members with the current time, so
the .npz bytes differ between runs but not their arrays.)
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "vae"
K, D = 128, 16          # codebook size, code dim (real file: K = 128, D from the file)
C = 24                  # decoder/encoder width (real file: 128)
ENC = [3, 6, 12, 24]    # encoder.0/2/4/6 output channels


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(c, c, 1))

    def forward(self, x):
        return x + self.net(x)


class VQVAE(nn.Module):
    def __init__(self):
        super().__init__()
        ups = []
        cin = C
        for i in range(4):  # flax: features dim, then dim //= 2 (128, 64, 32, 16 in the real file)
            cout = C >> i
            # flax ConvTranspose(4x4, stride 2, padding 2, transpose_kernel=True) == torch padding 1
            ups += [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.ReLU()]
            cin = cout
        self.decoder = nn.Sequential(nn.Conv2d(D, C, 1), nn.ReLU(), ResBlock(C), ResBlock(C),
                                     *ups, nn.Conv2d(cin, 1, 1))
        downs = []
        cin = 1
        for cout in ENC:  # TF conv2d 4x4 stride 2 'SAME' on even sizes == torch padding 1
            downs += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.ReLU()]
            cin = cout
        self.encoder = nn.Sequential(*downs, ResBlock(cin), ResBlock(cin), nn.Conv2d(cin, D, 1))
        self.embedding = nn.Parameter(torch.randn(K, D))

    def decode(self, codes):  # (B,16) -> (B,64,64)
        q = self.embedding[codes.reshape(-1)].reshape(codes.shape[0], 4, 4, D)  # row-major grid
        return self.decoder(q.permute(0, 3, 1, 2))[:, 0]

    def encode_features(self, m64):  # (B,64,64) in [0,1] -> (B,16,D)
        x = self.encoder(2.0 * (m64[:, None] - 0.5))
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], 16, D)

    def encode(self, m64):
        f = self.encode_features(m64).double()
        e = self.embedding.double()
        d = (f ** 2).sum(-1, keepdim=True) + (e ** 2).sum(-1) - 2 * f @ e.T
        s = torch.sort(d, dim=-1).values
        gap = (s[..., 1] - s[..., 0]).min().item()
        return d.argmin(-1), gap


def init(model):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.normal_(0, (2.0 / fan_in) ** 0.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
            elif isinstance(m, nn.ConvTranspose2d):
                fan_in = m.in_channels * 4  # each output sees in * (k / stride)^2 taps
                m.weight.normal_(0, (2.0 / fan_in) ** 0.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
        model.embedding.normal_(0, 1, generator=g)
        # Residual blocks: damp the last conv so activations stay O(1) through two blocks.
        for rb in [model.decoder[2], model.decoder[3], model.encoder[8], model.encoder[9]]:
            rb.net[4].weight.mul_(0.5)
        model.decoder[12].bias.fill_(0.0)


def state_dict_npz(model):
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    sd["_vq_vae._embedding"] = sd.pop("embedding")
    return sd


def pil_in_box(logits64, box, w, h):
    y1, x1, y2, x2 = box
    mi = np.asarray(PIL.Image.fromarray(logits64.astype(np.float32)).resize(
        [x2 - x1, y2 - y1], resample=PIL.Image.BILINEAR)) > 0.0
    out = np.zeros((h, w), np.uint8)
    ya, yb, xa, xb = max(y1, 0), min(y2, h), max(x1, 0), min(x2, w)
    out[ya:yb, xa:xb] = mi[ya - y1:yb - y1, xa - x1:xb - x1]
    return out


def tf_resize64(crop_u8):  # tf.image.resize(bilinear, antialias=True) / 255, via torch
    x = torch.from_numpy(crop_u8.astype(np.float32))[None, None]
    return (F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True,
                          align_corners=False)[0, 0] / 255.0).numpy()


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    model = VQVAE()
    init(model)
    model.eval()
    sd = state_dict_npz(model)
    np.savez(OUT / "vae_stored.npz", **sd)
    np.savez_compressed(OUT / "vae_deflated.npz", **sd)
    with zipfile.ZipFile(OUT / "vae_stored.npz") as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    with zipfile.ZipFile(OUT / "vae_deflated.npz") as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())

    rng = np.random.default_rng(7)
    codes = np.stack([np.zeros(16, np.int64), np.full(16, K - 1, np.int64), np.arange(16, dtype=np.int64) * 8,
                      *rng.integers(0, K, size=(5, 16))]).astype(np.int64)
    with torch.no_grad():
        logits = model.decode(torch.from_numpy(codes)).numpy().astype(np.float32)
    print("decoder logits: mean %.3f std %.3f min %.3f max %.3f, frac>0 %.3f" %
          (logits.mean(), logits.std(), logits.min(), logits.max(), (logits > 0).mean()))
    assert logits.std() > 0.1, "outputs should be O(1)"
    np.save(OUT / "dec_codes.npy", codes)
    np.save(OUT / "dec_logits.npy", logits)

    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    disc = (((yy - 30) ** 2 + (xx - 36) ** 2) < 20 ** 2).astype(np.float32)
    rect = ((yy >= 10) & (yy < 50) & (xx >= 5) & (xx < 40)).astype(np.float32)
    smooth = 0.5 + 0.5 * np.sin(xx / 7.0) * np.cos(yy / 5.0)
    masks = np.stack([disc, rect, smooth, np.zeros((64, 64), np.float32), np.ones((64, 64), np.float32),
                      rng.random((64, 64), dtype=np.float32)]).astype(np.float32)
    with torch.no_grad():
        enc, gap = model.encode(torch.from_numpy(masks))
    print("encoder codes gap (min distance margin) %.4g" % gap)
    assert gap > 1e-3, "a near tie: the C++ codes could legitimately differ"
    np.save(OUT / "enc_masks.npy", masks)
    np.save(OUT / "enc_codes.npy", enc.numpy().astype(np.int64))

    # Full-resolution round trip: mask -> crop/resize -> codes -> logits -> PIL into box.
    H, W = 90, 120
    gy, gx = np.mgrid[0:H, 0:W]
    full = ((((gy - 45) / 30.0) ** 2 + ((gx - 60) / 42.0) ** 2) < 1).astype(np.uint8) * 255
    box = np.array([15, 18, 76, 103], np.int64)  # y1 x1 y2 x2, half-open
    y1, x1, y2, x2 = box
    m64 = tf_resize64(full[y1:y2, x1:x2]).astype(np.float32)
    with torch.no_grad():
        fcodes, gap = model.encode(torch.from_numpy(m64)[None])
        flog = model.decode(fcodes).numpy()[0].astype(np.float32)
    assert gap > 1e-3, gap
    rt = pil_in_box(flog, tuple(int(v) for v in box), W, H)
    gt = full > 0
    iou = np.float64((gt & (rt > 0)).sum() / (gt | (rt > 0)).sum())
    print("round-trip IoU (random weights) %.4f" % iou)
    np.save(OUT / "full_mask.npy", full)
    np.save(OUT / "full_box.npy", box)
    np.save(OUT / "full_mask64.npy", m64)
    np.save(OUT / "full_codes.npy", fcodes.numpy()[0].astype(np.int64))
    np.save(OUT / "full_logits.npy", flog)
    np.save(OUT / "full_roundtrip.npy", rt)
    np.save(OUT / "full_iou.npy", np.array(iou))

    # mask_in_box through PIL: shrinking (box < 64) and enlarging, partly outside the image.
    bl = np.asarray(np.sin(xx / 4.0 + 0.3) * np.cos(yy / 6.0) + 0.1, np.float32)
    np.save(OUT / "box_logits.npy", bl)
    for name, b in [("small", (10, 20, 50, 47)), ("large", (-7, 30, 85, 135))]:
        np.save(OUT / f"box_{name}.npy", np.array(b, np.int64))
        np.save(OUT / f"inbox_{name}.npy", pil_in_box(bl, b, W, H))

    # Small malformed archives.
    emb = sd["_vq_vae._embedding"]
    np.savez(OUT / "bad_missing.npz", **{"_vq_vae._embedding": emb})
    np.savez(OUT / "bad_shape.npz", **{"_vq_vae._embedding": emb,
                                       "decoder.0.weight": np.zeros((C, D + 1, 1, 1), np.float32),
                                       "decoder.0.bias": np.zeros((C,), np.float32)})
    np.savez(OUT / "bad_emb_rank.npz", **{"_vq_vae._embedding": emb.reshape(-1)})
    np.savez(OUT / "bad_dtype.npz", **{"_vq_vae._embedding": emb.astype(np.int32)})
    with zipfile.ZipFile(OUT / "bad_member.npz", "w") as z:
        z.writestr("x.npy", b"this is not a .npy file")
    with zipfile.ZipFile(OUT / "mixed.npz", "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("notes.txt", b"ignored")
    np_arrays = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.array([1.5, -2.0], np.float64),
                 "c.d": np.zeros((0, 4), np.float32), "s": np.array(3, np.uint8)}
    with zipfile.ZipFile(OUT / "mixed.npz", "a", compression=zipfile.ZIP_DEFLATED) as z:
        for k, v in np_arrays.items():
            with z.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, v)
    (OUT / "not_a_zip.npz").write_bytes(b"PK\x03\x04 definitely not a zip archive\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print("wrote %s (%d files, %.0f KB)" % (OUT, len(list(OUT.iterdir())), total / 1024))


if __name__ == "__main__":
    main()
