"""Golden data for the stage-2 position-embedding resampling (src/model/resolution.cpp).

big_vision's resample_posemb (big_vision/models/vit.py, google-research/big_vision 5f95305c),
restated here with the same calls: the (1, N, D) table as a sqrt(N) x sqrt(N) x D grid,
scipy.ndimage.zoom(grid, (new/old, new/old, 1), order=1), reshaped back.

Writes tests/fixtures/posemb/case_<old>_<new>.npz-like pairs of .npy files:
  in_<old>_<new>.npy  (old*old, D) f4      out_<old>_<new>.npy (new*new, D) f4
Run: .venv-golden/bin/python tools/golden/make_posemb_golden.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.ndimage

OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "posemb"
CASES = [(4, 8, 6), (4, 16, 3), (8, 4, 5), (3, 7, 4), (2, 5, 2), (5, 5, 3), (6, 1, 2)]


def resample_posemb(old: np.ndarray, new_tokens: int) -> np.ndarray:
    gs_old = int(np.sqrt(old.shape[1]))
    gs_new = int(np.sqrt(new_tokens))
    grid = old.reshape(gs_old, gs_old, -1)
    zoom = (gs_new / gs_old, gs_new / gs_old, 1)
    grid = scipy.ndimage.zoom(grid, zoom, order=1)
    return grid.reshape(1, gs_new * gs_new, -1)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261201)
    for old, new, dim in CASES:
        table = rng.standard_normal((1, old * old, dim)).astype(np.float32)
        out = resample_posemb(table, new * new)
        assert out.dtype == np.float32 and out.shape == (1, new * new, dim)
        np.save(OUT / f"in_{old}_{new}.npy", table[0])
        np.save(OUT / f"out_{old}_{new}.npy", out[0])
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
