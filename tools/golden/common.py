"""Shared constants and helpers for the golden-data tools.

Everything here is deterministic; the scripts in this folder regenerate the
committed fixtures under tests/fixtures/ byte for byte (see README.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MODELS_DIR = FIXTURES / "models"
GOLDEN_DIR = FIXTURES / "golden"
PHOTOS_DIR = FIXTURES / "photos"
TOKENIZER_PATH = MODELS_DIR / "tokenizer.model"

# ---- vocabulary layout (identical to the released PaliGemma tokenizer) ----
PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3
NEWLINE_ID = 108                 # "\n", as in the Gemma tokenizer
TEXT_VOCAB = 256000              # ids 0..255999: Gemma text pieces
LOC_BASE = 256000                # <loc0000>..<loc1023>
NUM_LOC = 1024
SEG_BASE = 257024                # <seg000>..<seg127>
NUM_SEG = 128
SP_VOCAB = 257152                # pieces in tokenizer.model
IMAGE_TOKEN_ID = 257152          # <image>, added by the HF processor (not in the SP model)
MODEL_VOCAB = 257216             # embedding rows: 257152 + <image> + 63 padding rows

# Pieces placed in front of the learned BPE pieces, mirroring Gemma's layout:
# ids 4..105 and 106/107 as in Gemma, "\n" at 108.
GEMMA_HEAD_PIECES = (
    ["<mask>", "[@BOS@]"]
    + [f"<unused{i}>" for i in range(100)]
    + ["<start_of_turn>", "<end_of_turn>", "\n"]
)
assert 4 + GEMMA_HEAD_PIECES.index("\n") == NEWLINE_ID


def filler_range(tokenizer_path: Path = TOKENIZER_PATH) -> tuple[int, int]:
    """[first, end) ids of the '<unusedN>' filler pieces appended after training."""
    meta = json.loads((MODELS_DIR / "tokenizer_meta.json").read_text())
    return meta["filler_first_id"], meta["filler_end_id"]


def log(*args):
    print(*args, flush=True)
    sys.stdout.flush()


def set_threads():
    """Pin torch to a fixed thread count so that reductions are reproducible."""
    import torch

    torch.set_num_threads(int(os.environ.get("PG_GOLDEN_THREADS", "1")))
    torch.use_deterministic_algorithms(True)
