#!/usr/bin/env python
"""Build tests/fixtures/models/tokenizer.model: a small Gemma-style SentencePiece
BPE model padded to the exact PaliGemma vocabulary layout (257152 pieces).

  ids 0..3            <pad> <eos> <bos> <unk>            (as in Gemma)
  ids 4..108          <mask> [@BOS@] <unused0..99> <start_of_turn> <end_of_turn> "\\n"
                      (USER_DEFINED; "\\n" = 108 as in Gemma)
  ids 109..364        <0x00>..<0xFF> byte-fallback pieces
  ids 365..F-1        learned BPE pieces (NORMAL) on a generated English corpus
  ids F..255999       filler '<unusedN>' pieces (type UNUSED: never produced by encoding)
  ids 256000..257023  <loc0000>..<loc1023>   (USER_DEFINED, one token each)
  ids 257024..257151  <seg000>..<seg127>     (USER_DEFINED, one token each)

The trainer settings follow the Gemma tokenizer's trainer_spec (see the
GemmaConverter docstring in transformers/convert_slow_tokenizer.py):
BPE, byte_fallback, split_digits, split_by_unicode_script/number/whitespace,
no dummy prefix, no whitespace removal, identity normalisation,
allow_whitespace_only_pieces.

Usage: .venv-golden/bin/python tools/golden/make_tokenizer.py
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    BOS_ID, EOS_ID, GEMMA_HEAD_PIECES, LOC_BASE, MODELS_DIR, NEWLINE_ID, NUM_LOC, NUM_SEG,
    PAD_ID, SEG_BASE, SP_VOCAB, TEXT_VOCAB, TOKENIZER_PATH, UNK_ID, log,
)

import sentencepiece as spm  # noqa: E402
from sentencepiece import sentencepiece_model_pb2 as sp_pb2  # noqa: E402

SEED = 20240710
TRAIN_VOCAB = 2048  # pieces in the trained model (specials + user-defined + bytes + BPE)

# --------------------------------------------------------------------------
# A small generated corpus: captions, VQA questions/answers, task prompts,
# detection/OCR-like strings, numbers and some punctuation.
# --------------------------------------------------------------------------
NOUNS = """
cat dog kitten puppy bird parrot owl eagle duck goose horse cow sheep goat pig chicken rabbit mouse
rat squirrel fox wolf bear lion tiger leopard cheetah zebra giraffe elephant monkey gorilla panda koala
kangaroo deer moose camel donkey turtle frog snake lizard fish shark whale dolphin octopus crab
butterfly bee spider ant man woman boy girl child baby person people player chef doctor teacher
farmer soldier police officer driver pilot astronaut rocket spaceship satellite airplane plane jet
helicopter car truck bus train tram bicycle bike motorcycle scooter boat ship sailboat canoe
kayak taxi van tractor ambulance street road highway bridge tunnel building house home apartment
tower castle church temple school hospital station airport harbor park garden forest tree trees
flower flowers grass field meadow mountain hill valley river lake ocean sea beach sand rock stone
cliff desert island sky cloud clouds sun moon star stars rain snow ice fog storm sunset sunrise
night morning evening table chair sofa couch bed lamp window door wall floor ceiling carpet rug
kitchen bathroom bedroom office room shelf book books paper pen pencil laptop computer keyboard
screen monitor phone camera television radio clock watch mug cup coffee tea glass bottle plate
bowl spoon fork knife pizza burger sandwich cake bread apple banana orange lemon grape strawberry
tomato potato carrot salad soup rice noodles egg cheese milk water juice wine beer ball bat racket
kite umbrella bag backpack suitcase hat cap shirt jacket coat dress shoe shoes boots glasses tie
scarf sign logo poster picture photo painting image text word letter number price menu map flag
fence gate pole light lights traffic signal crosswalk sidewalk bench fountain statue crowd team
game match stadium court pitch goal net wave waves surfboard skateboard ski skis snowboard frisbee
toy toys doll robot machine engine wheel tire box boxes basket bucket bowl vase candle mirror towel
sink toilet shower bathtub oven stove fridge refrigerator microwave toaster blender counter cabinet
drawer basket launch pad smoke flame fire tail fur whiskers eye eyes ear ears nose mouth face hand
hands leg legs paw paws wing wings feather head body background foreground corner center edge side
top bottom left right front back middle surface pattern stripe stripes spot spots texture color
""".split()

ADJS = """
red orange yellow green blue purple pink brown black white gray grey silver golden dark light bright
pale colorful striped spotted small large big tiny huge tall short long wide narrow old young new
modern ancient wooden metal plastic glass stone brick concrete wet dry sunny cloudy rainy snowy
foggy busy empty crowded quiet calm happy sad cute fluffy furry soft hard smooth rough clean dirty
open closed round square flat steep shiny blurry sharp hot cold warm fresh ripe sliced cooked fried
""".split()

VERBS = """
sitting standing lying walking running jumping flying swimming eating drinking sleeping playing
holding carrying riding driving looking watching reading writing cooking cutting throwing catching
climbing parked waiting crossing launching resting posing smiling talking pointing wearing hanging
floating leaning covered filled surrounded stacked scattered placed
""".split()

PREPS = """
on in under near next to behind beside above below across along inside outside over through
between against around at by with without
""".split()

COLORS = ADJS[:16]
TASKS_LANG = "en es fr de it pt nl ru zh ja ko ar hi sw tr pl sv".split()
QUESTION_WORDS = [
    "what is in the picture", "what is in the image", "what is the cat doing", "what color is the cup",
    "how many animals are there", "how many people are in the photo", "where is the rocket",
    "is there a dog", "is it daytime", "what is on the table", "what is the man holding",
    "which animal is this", "what is written on the sign", "what time is it", "who is in the picture",
    "what is the weather like", "what is behind the cat", "is the cup full", "what is the object",
    "how many cups are there", "what kind of drink is this", "where was this photo taken",
]
NAMES = "Chelsea Falcon Apollo Saturn London Paris Tokyo Berlin Rome Madrid Cairo Delhi Nairobi".split()


def _phrase(r: random.Random) -> str:
    n = r.choice(NOUNS)
    if r.random() < 0.6:
        n = f"{r.choice(ADJS)} {n}"
    art = r.choice(["a", "the", "an", "two", "three", "some", "a", "a"])
    return f"{art} {n}"


def _caption(r: random.Random) -> str:
    s = f"{_phrase(r)} {r.choice(VERBS)} {r.choice(PREPS)} {_phrase(r)}"
    if r.random() < 0.3:
        s += f" {r.choice(['and', 'with', 'while'])} {_phrase(r)}"
    if r.random() < 0.5:
        s = s[0].upper() + s[1:]
    if r.random() < 0.4:
        s += "."
    return s


def _loc(r: random.Random) -> str:
    return "".join(f"<loc{r.randrange(1024):04d}>" for _ in range(4))


def _line(r: random.Random) -> str:
    k = r.randrange(14)
    if k == 0:
        return f"caption {r.choice(TASKS_LANG)}"
    if k == 1:
        return f"answer {r.choice(TASKS_LANG)} {r.choice(QUESTION_WORDS)}?"
    if k == 2:
        objs = " ; ".join(r.choice(NOUNS) for _ in range(r.randrange(1, 4)))
        return f"detect {objs}"
    if k == 3:
        return f"segment {r.choice(NOUNS)}"
    if k == 4:
        return f"{_loc(r)} {r.choice(NOUNS)} ; {_loc(r)} {r.choice(NOUNS)}"
    if k == 5:
        return f"ocr {r.choice(NAMES)} {r.randrange(10000)} {r.choice(['St.', 'Ave', 'Rd', 'km/h', '%', '$'])}"
    if k == 6:
        return f"{r.randrange(100000)} {r.random() * 1000:.2f} {r.randrange(1900, 2030)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"
    if k == 7:
        return f"{r.choice(QUESTION_WORDS).capitalize()}? {_caption(r)}"
    if k == 8:
        return f"There are {r.randrange(2, 20)} {r.choice(NOUNS)}s {r.choice(PREPS)} {_phrase(r)}."
    if k == 9:
        return f"\"{_caption(r)}\", said the {r.choice(NOUNS)}; (yes/no): {r.choice(['yes', 'no'])}!"
    if k == 10:
        return f"{r.choice(NAMES)} {r.choice(VERBS)} {r.choice(PREPS)}  {_phrase(r)}   {r.choice(COLORS)}"
    return _caption(r)


def make_corpus(path: Path, n_lines: int = 60000) -> None:
    r = random.Random(SEED)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n_lines):
            f.write(_line(r) + "\n")


# --------------------------------------------------------------------------
def train(workdir: Path) -> sp_pb2.ModelProto:
    corpus = workdir / "corpus.txt"
    make_corpus(corpus)
    prefix = workdir / "tok"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=TRAIN_VOCAB,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        split_by_unicode_script=True,
        split_by_number=True,
        split_by_whitespace=True,
        treat_whitespace_as_suffix=False,
        allow_whitespace_only_pieces=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        pad_id=PAD_ID, eos_id=EOS_ID, bos_id=BOS_ID, unk_id=UNK_ID,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=GEMMA_HEAD_PIECES,
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        max_sentence_length=4192,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    m = sp_pb2.ModelProto()
    m.ParseFromString((workdir / "tok.model").read_bytes())
    return m


def pad_vocab(m: sp_pb2.ModelProto) -> tuple[sp_pb2.ModelProto, int]:
    P = sp_pb2.ModelProto.SentencePiece
    n_trained = len(m.pieces)
    assert n_trained <= TEXT_VOCAB
    existing = {p.piece for p in m.pieces}
    k = 100  # <unused0..99> are taken by the Gemma head pieces
    for _ in range(n_trained, TEXT_VOCAB):
        while f"<unused{k}>" in existing:
            k += 1
        p = m.pieces.add()
        p.piece, p.score, p.type = f"<unused{k}>", 0.0, P.UNUSED
        k += 1
    for i in range(NUM_LOC):
        p = m.pieces.add()
        p.piece, p.score, p.type = f"<loc{i:04d}>", 0.0, P.USER_DEFINED
    for i in range(NUM_SEG):
        p = m.pieces.add()
        p.piece, p.score, p.type = f"<seg{i:03d}>", 0.0, P.USER_DEFINED
    assert len(m.pieces) == SP_VOCAB
    m.trainer_spec.vocab_size = SP_VOCAB
    # Keep the spec free of machine-specific paths.
    del m.trainer_spec.input[:]
    m.trainer_spec.input.append("corpus.txt")
    m.trainer_spec.model_prefix = "tokenizer"
    return m, n_trained


def verify(path: Path, filler_first: int) -> dict:
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert sp.get_piece_size() == SP_VOCAB, sp.get_piece_size()
    assert (sp.pad_id(), sp.eos_id(), sp.bos_id(), sp.unk_id()) == (PAD_ID, EOS_ID, BOS_ID, UNK_ID)
    assert sp.id_to_piece(BOS_ID) == "<bos>" and sp.id_to_piece(EOS_ID) == "<eos>"
    assert sp.encode("\n") == [NEWLINE_ID], sp.encode("\n")
    for i in range(NUM_LOC):
        assert sp.encode(f"<loc{i:04d}>") == [LOC_BASE + i]
    for i in range(NUM_SEG):
        assert sp.encode(f"<seg{i:03d}>") == [SEG_BASE + i]
    samples = [
        "caption en", "answer en what is in the picture?", "detect cat", "detect cat ; dog",
        "segment cat", "detect <loc0123> cat", "<loc0000><loc1023><seg000><seg127>",
        "caption en\n", "beach", " beach", "2024-07-10 12345", "ünïcödé ☃ 猫", "a  b   c\n\nd\t",
    ]
    info = {}
    for s in samples:
        ids = sp.encode(s)
        assert sp.decode(ids) == s, (s, ids, sp.decode(ids))
        assert all(i < filler_first or i >= LOC_BASE for i in ids), (s, ids)
        info[s] = ids
    assert sp.encode("beach") != sp.encode(" beach")  # no dummy prefix
    return info


def main() -> None:
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        log("[tokenizer] generating corpus and training BPE ...")
        m = train(Path(td))
    log(f"[tokenizer] trained pieces: {len(m.pieces)}")
    m, n_trained = pad_vocab(m)
    data = m.SerializeToString()
    TOKENIZER_PATH.write_bytes(data)
    log(f"[tokenizer] wrote {TOKENIZER_PATH} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]})")
    info = verify(TOKENIZER_PATH, n_trained)
    for s, ids in info.items():
        log(f"  {s!r:45} -> {ids}")
    meta = {
        "sp_vocab_size": SP_VOCAB,
        "trained_pieces": n_trained,
        "filler_first_id": n_trained,
        "filler_end_id": TEXT_VOCAB,
        "pad_id": PAD_ID, "eos_id": EOS_ID, "bos_id": BOS_ID, "unk_id": UNK_ID,
        "newline_id": NEWLINE_ID,
        "loc_base": LOC_BASE, "seg_base": SEG_BASE,
        "image_token_id_added_by_processor": 257152,
        "examples": info,
    }
    (MODELS_DIR / "tokenizer_meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    log("[tokenizer] sentencepiece checks passed; now checking the transformers processor ...")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hf_utils import check_hf_tokenizer

    check_hf_tokenizer(TOKENIZER_PATH, list(info.keys()))
    log("[tokenizer] done")


if __name__ == "__main__":
    main()
