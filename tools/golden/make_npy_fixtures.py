#!/usr/bin/env python3
"""Writes the small numpy-made .npy files under tests/fixtures/npy/ that tests/npy_test.cpp
reads back. Deterministic: rerunning it reproduces the committed files byte for byte.

    /work/main/.venv-golden/bin/python tools/golden/make_npy_fixtures.py

Values: every array holds np.arange(numel) (cast to its dtype) reshaped, except where noted,
so the test can check each element without a second data file.
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "npy")


def save(name, array, version=None):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, array, version=version, allow_pickle=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    # One file per supported dtype, shape (2, 3), values 0..5 (f types: 0, 0.5, .. 2.5 minus 1).
    for code in ["f4", "f8", "f2"]:
        save(f"{code}.npy", (np.arange(6, dtype=np.float64) * 0.5 - 1.0).astype("<" + code).reshape(2, 3))
    for code in ["i8", "i4", "i2", "i1"]:
        save(f"{code}.npy", (np.arange(6, dtype=np.int64) - 3).astype("<" + code).reshape(2, 3))
    for code in ["u1", "u2", "u4", "u8"]:
        save(f"{code}.npy", np.arange(6, dtype=np.uint64).astype("<" + code).reshape(2, 3))
    save("b1.npy", np.array([[True, False, True], [False, False, True]]))
    # Extremes that must survive exactly.
    save("i8_extremes.npy", np.array([np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max], dtype="<i8"))
    save("f2_special.npy", np.array([0.0, -0.0, 6.1035156e-05, 5.9604645e-08, 65504.0, np.inf, -np.inf], dtype="<f2"))
    # Header versions.
    save("f4_v2.npy", np.arange(4, dtype="<f4"), version=(2, 0))
    save("f4_v3.npy", np.arange(4, dtype="<f4"), version=(3, 0))
    # Shapes: 0-d, 1-d, empty, 3-d.
    save("scalar.npy", np.array(3.5, dtype="<f4"))
    save("vector.npy", np.arange(5, dtype="<f4"))
    save("empty.npy", np.zeros((0, 3), dtype="<f4"))
    save("rank3.npy", np.arange(24, dtype="<f4").reshape(2, 3, 4))
    # Files the reader must refuse.
    save("fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    save("big_endian.npy", np.arange(6, dtype=">f4").reshape(2, 3))
    save("complex.npy", np.arange(3, dtype="<c8"))


if __name__ == "__main__":
    main()
