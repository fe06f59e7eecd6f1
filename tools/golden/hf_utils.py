"""Helpers that build the Hugging Face reference objects (tokenizer, processor)."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from common import (
    BOS_ID, EOS_ID, IMAGE_TOKEN_ID, LOC_BASE, NEWLINE_ID, NUM_LOC, NUM_SEG, PAD_ID,
    SEG_BASE, TOKENIZER_PATH, log,
)


def load_hf_tokenizer(tokenizer_path: Path = TOKENIZER_PATH):
    """GemmaTokenizer converted by transformers from the SentencePiece file alone
    (no tokenizer.json / tokenizer_config.json), as a user pointing
    from_pretrained at a folder with only tokenizer.model gets it."""
    from transformers import GemmaTokenizer

    with tempfile.TemporaryDirectory() as td:
        shutil.copy(tokenizer_path, Path(td) / "tokenizer.model")
        tok = GemmaTokenizer.from_pretrained(td)
    return tok


def make_processor(image_size: int, patch_size: int, tokenizer_path: Path = TOKENIZER_PATH):
    """PaliGemmaProcessor with the SLOW (PIL) SigLIP image processor.

    In transformers 5.x the PIL implementation is SiglipImageProcessorPil
    (image_processing_pil_siglip.py); `SiglipImageProcessor` is the torchvision
    ("fast") one.  Settings are those of the released PaliGemma
    preprocessor_config.json: bicubic resize to a square, rescale 1/255,
    normalise with mean = std = 0.5, RGB conversion.
    """
    from transformers import PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    ip = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size},
        resample=3,  # PIL.Image.BICUBIC
        do_resize=True, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )
    ip.image_seq_length = (image_size // patch_size) ** 2
    tok = load_hf_tokenizer(tokenizer_path)
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)
    assert proc.image_token_id == IMAGE_TOKEN_ID, proc.image_token_id
    return proc


def check_hf_tokenizer(tokenizer_path: Path, samples: list[str]) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    tok = load_hf_tokenizer(tokenizer_path)
    assert len(tok) == sp.get_piece_size(), (len(tok), sp.get_piece_size())
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (PAD_ID, EOS_ID, BOS_ID)
    assert tok.bos_token == "<bos>" and tok.eos_token == "<eos>"
    # the processor adds <image> as id 257152 and re-adds loc/seg (already present)
    proc = make_processor(56, 14, tokenizer_path)
    tok = proc.tokenizer
    assert tok.convert_tokens_to_ids("<image>") == IMAGE_TOKEN_ID
    assert len(tok) == IMAGE_TOKEN_ID + 1, len(tok)
    enc = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    assert enc("\n") == [NEWLINE_ID]
    for i in range(NUM_LOC):
        assert enc(f"<loc{i:04d}>") == [LOC_BASE + i]
    for i in range(NUM_SEG):
        assert enc(f"<seg{i:03d}>") == [SEG_BASE + i]
    # HF (tokenizers BPE with merges rebuilt from the vocab) must agree with
    # SentencePiece on everything we feed it.
    r = random.Random(7)
    from make_tokenizer import _line

    lines = list(samples) + [_line(r) for _ in range(3000)]
    lines += [a + "\n" + b for a, b in zip(lines[::2], lines[1::2])]
    bad = [s for s in lines if enc(s) != sp.encode(s)]
    assert not bad, f"HF/SentencePiece disagree on {len(bad)} strings, e.g. {bad[:3]!r}"
    log(f"[tokenizer] transformers GemmaTokenizer == sentencepiece on {len(lines)} strings; "
        f"loc/seg single tokens; <image> = {IMAGE_TOKEN_ID}")


def prompt_inputs(config, image_path: Path, prompt: str) -> dict:
    """The tensors transformers' PaliGemmaProcessor makes for one image and one
    prefix (`<image>` x N, `<bos>`, prompt, `\\n`), for a model with this
    PaliGemmaConfig: input_ids, token_type_ids, attention_mask, pixel_values
    (batch 1).  `labels` (returned because token_type_ids are) is dropped, so the
    dict can be passed to the model's forward or generate as is."""
    from transformers.image_utils import load_image

    vc = config.vision_config
    proc = make_processor(vc.image_size, vc.patch_size)
    inputs = proc(images=load_image(str(image_path)), text=prompt, return_tensors="pt")
    return {k: v for k, v in inputs.items() if k != "labels"}
