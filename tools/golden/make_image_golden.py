#!/usr/bin/env python3
"""Golden data for tests/image_test.cpp: image decoding, PIL bicubic resize, SigLIP preprocessing.

Run with the golden venv (Pillow 13.0.0, transformers 5.x, numpy):

    .venv-golden/bin/python tools/golden/make_image_golden.py

It is deterministic: the same library versions give byte-identical output. It writes, under
tests/fixtures/images/:

  * format variants made from the real photos in tests/fixtures/photos/ (downscaled so the
    fixtures stay small): JPEG (baseline 4:4:4/4:2:2/4:2:0, odd sizes, progressive, optimised,
    restart markers, grayscale, CMYK), PNG (every colour type and bit depth, palette with
    transparency, tRNS, 16-bit, interlaced), BMP, GIF, PPM/PGM/PBM, WebP (lossy, lossless, alpha),
    and EXIF orientations 1-8 (JPEG APP1, both byte orders; PNG eXIf; WebP EXIF; XMP fallback);
  * <variant>.npy: transformers.image_utils.load_image(<variant file>) as an HxWx3 uint8 array;
  * resize_<photo>_<W>x<H>.npy: Image.resize((W, H), BICUBIC) of a loaded photo;
  * siglip_<photo>_<S>.npy: SiglipImageProcessorPil pixel_values (1x3xSxS float32) with
    PaliGemma's preprocessor config (bicubic to SxS, rescale 1/255, mean 0.5, std 0.5);
  * siglip_ramp.npy: the same processor with do_resize=False on a 16x16 image holding every uint8
    value in every channel (exhaustive check of the float math);
  * bigvision_*.npy (only with --tf-python, a Python that has TensorFlow; the committed files
    were made with tensorflow-cpu 2.17.0 in a separate venv): big_vision's
    tf.image.resize(bilinear, antialias=True) -> clip -> uint8 results, and x/127.5 - 1 on every
    uint8 value;
  * manifest.json: the list of cases the C++ test iterates over.
"""
from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"
OUT = ROOT / "tests" / "fixtures" / "images"


# ---------------------------------------------------------------------------------------------
# Small writers for what Pillow cannot save itself (16-bit RGB PNG, interlaced PNG, GIF with a
# partial first frame, 16-bit BMP, ...).


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width, height, bit_depth, color_type, rows, extra_chunks=(), interlaced=False,
              after_idat=()):
    """rows: list of bytes (already packed scanlines without filter byte) or, for interlaced
    images, a callable(x0, y0, dx, dy) -> list of packed rows of the sub image."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlaced else 0)
    if interlaced:
        raw = b""
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                  (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            if x0 >= width or y0 >= height:
                continue
            for r in rows(x0, y0, dx, dy):
                raw += b"\x00" + r
    else:
        raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for kind, data in extra_chunks:
        out += png_chunk(kind, data)
    out += png_chunk(b"IDAT", zlib.compress(raw, 9))
    for kind, data in after_idat:
        out += png_chunk(kind, data)
    return out + png_chunk(b"IEND", b"")


def pack_bits(values, bits):
    """Packs a 1-D sequence of small ints MSB first, padded to a byte."""
    s = "".join(format(int(v), f"0{bits}b") for v in values)
    s += "0" * ((-len(s)) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def gif_lzw(indices, min_code_size=8):
    """A valid (if not compact) GIF LZW stream: a clear code every 250 codes keeps the code
    width at min_code_size + 1 bits, so no string table logic is needed."""
    clear, eoi = 1 << min_code_size, (1 << min_code_size) + 1
    width = min_code_size + 1
    codes = []
    for i, v in enumerate(indices):
        if i % 250 == 0:
            codes.append(clear)
        codes.append(int(v))
    codes.append(eoi)
    acc, nbits, out = 0, 0, bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    blocks = b""
    for i in range(0, len(out), 255):
        chunk = bytes(out[i:i + 255])
        blocks += bytes([len(chunk)]) + chunk
    return bytes([min_code_size]) + blocks + b"\x00"


def gif_bytes(canvas_w, canvas_h, palette, frames, bg_index=0):
    """frames: list of (x, y, w, h, indices(h x w), transparent_index or None)."""
    pal = bytes(np.asarray(palette, np.uint8).reshape(-1))
    assert len(pal) == 256 * 3
    out = b"GIF89a" + struct.pack("<HHBBB", canvas_w, canvas_h, 0xF7, bg_index, 0) + pal
    for x, y, w, h, idx, trans in frames:
        flags = 0x01 if trans is not None else 0
        out += b"\x21\xF9\x04" + bytes([flags]) + struct.pack("<H", 10) + bytes([trans or 0]) + b"\x00"
        out += b"\x2C" + struct.pack("<HHHHB", x, y, w, h, 0)
        out += gif_lzw(np.asarray(idx, np.uint8).reshape(-1))
    return out + b"\x3B"


def bmp16_bytes(rgb, five_six_five):
    """A 16 bit per pixel BMP (BI_BITFIELDS for 5-6-5, BI_RGB for 5-5-5)."""
    h, w, _ = rgb.shape
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    if five_six_five:
        px = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
    else:
        px = ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3)
    row_bytes = (w * 2 + 3) // 4 * 4
    data = b""
    for y in range(h - 1, -1, -1):
        row = b"".join(struct.pack("<H", int(p)) for p in px[y])
        data += row + b"\0" * (row_bytes - len(row))
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F) if five_six_five else b""
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3 if five_six_five else 0, len(data), 2835,
                       2835, 0, 0)
    offset = 14 + 40 + len(masks)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + masks + data


def exif_orientation(orientation, big_endian=True):
    """A minimal EXIF block ("Exif\\0\\0" + TIFF header + IFD0 with one Orientation entry)."""
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    tiff += struct.pack(e + "H", 1) + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack(e + "I", 0)
    return b"Exif\x00\x00" + tiff


def xmp_orientation(orientation):
    return (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
            b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
            b'tiff:Orientation="%d"/></rdf:RDF></x:xmpmeta>' % orientation)


def riff_webp_with_chunks(webp: bytes, chunks):
    """Adds metadata chunks (e.g. EXIF) to a simple (VP8 / VP8L) WebP by converting it to the
    extended (VP8X) layout."""
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    body = webp[12:]
    kind = body[:4]
    im = Image.open(io.BytesIO(webp))
    w, h = im.size
    flags = 0
    if kind == b"VP8L" and im.mode == "RGBA":
        flags |= 0x10
    names = [c[0] for c in chunks]
    if b"EXIF" in names:
        flags |= 0x08
    if b"XMP " in names:
        flags |= 0x04
    vp8x = struct.pack("<I", flags) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    out = b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x + body
    for kind, data in chunks:
        out += kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(out) + 4) + b"WEBP" + out


# big_vision's pp ops "resize(size, method='bilinear', antialias=True)" (tf.image.resize, then
# tf.cast(tf.clip_by_value(x, 0, 255), uint8), which truncates) followed by x / 127.5 - 1 in
# float32. Run in a separate Python that has TensorFlow.
BIGVISION_TF_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
for src, width, height, dst in json.loads(sys.argv[1]):
    image = tf.constant(np.load(src))
    if width == 0:  # the value-range step alone: x / 127.5 - 1 in float32, CHW
        x = tf.cast(image, tf.float32) / 127.5 - 1.0
        np.save(dst, np.ascontiguousarray(np.transpose(x.numpy(), (2, 0, 1))[None], dtype=np.float32))
        continue
    resized = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    u8 = tf.cast(tf.clip_by_value(resized, 0, 255), tf.uint8)
    np.save(dst, u8.numpy())
"""


README = """# Image golden data (generated)

Made by `tools/golden/make_image_golden.py` (run with `.venv-golden/bin/python`, plus
`--tf-python <python with tensorflow>` for the big_vision files) from the photos in
`tests/fixtures/photos/`; do not edit by hand, re-run the script. `manifest.json` lists the cases
that `tests/image_test.cpp` checks:

* `decode`: a format variant and `transformers.image_utils.load_image(variant)` as HxWx3 uint8
  (Pillow 13.0.0: open, exif_transpose, convert("RGB"));
* `resize`: `Image.resize((W, H), Image.BICUBIC)` of a loaded image;
* `siglip`: `SiglipImageProcessorPil` pixel_values with PaliGemma's preprocessor config;
* `bigvision`: TensorFlow 2.17 `tf.image.resize(bilinear, antialias=True)` then clip and uint8
  cast (big_vision's resize op), and `x / 127.5 - 1` on every uint8 value.
"""


# ---------------------------------------------------------------------------------------------


def load_image_golden(path: Path) -> np.ndarray:
    from transformers.image_utils import load_image

    im = load_image(str(path))
    arr = np.asarray(im, dtype=np.uint8)
    assert arr.ndim == 3 and arr.shape[2] == 3, arr.shape
    return np.ascontiguousarray(arr)


def photo(name: str) -> Image.Image:
    return Image.open(PHOTOS / name).convert("RGB")


def small(name: str, size) -> Image.Image:
    return photo(name).resize(size, Image.Resampling.LANCZOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tf-python", default="",
                    help="a Python with TensorFlow, used to make the big_vision bilinear goldens")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    # Without TensorFlow, keep the big_vision goldens already there (and their manifest entries).
    kept_bigvision = []
    if not args.tf_python and (OUT / "manifest.json").exists():
        kept_bigvision = json.loads((OUT / "manifest.json").read_text()).get("bigvision", [])
    for old in OUT.iterdir():
        if old.is_file() and not (kept_bigvision and old.name.startswith("bigvision_")):
            old.unlink()

    manifest = {"decode": [], "resize": [], "siglip": [], "bigvision": kept_bigvision}

    def add_variant(name: str, data: bytes, what: str, exact: bool = True):
        path = OUT / name
        path.write_bytes(data)
        golden = load_image_golden(path)
        stem = name.rsplit(".", 1)[0]
        np.save(OUT / f"{stem}.npy", golden)
        manifest["decode"].append({"file": name, "golden": f"{stem}.npy", "what": what, "exact": exact})

    def save_pil(im: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        return buf.getvalue()

    cat = small("chelsea.png", (67, 45))      # odd sizes: partial MCUs, odd chroma
    cof = small("coffee.png", (64, 43))
    roc = small("rocket.jpg", (48, 32))
    wide = small("coffee.png", (40, 26))       # non-square source for the orientation variants

    # --- JPEG ----------------------------------------------------------------------------------
    add_variant("jpeg_444.jpg", save_pil(cat, "JPEG", quality=92, subsampling=0), "baseline 4:4:4")
    add_variant("jpeg_422.jpg", save_pil(cat, "JPEG", quality=85, subsampling=1), "baseline 4:2:2")
    add_variant("jpeg_420.jpg", save_pil(cat, "JPEG", quality=75, subsampling=2), "baseline 4:2:0, odd size")
    add_variant("jpeg_420_even.jpg", save_pil(cof, "JPEG", quality=80, subsampling=2), "4:2:0")
    add_variant("jpeg_progressive.jpg", save_pil(cof, "JPEG", quality=85, progressive=True),
                "progressive 4:2:0")
    add_variant("jpeg_progressive_444.jpg",
                save_pil(cat, "JPEG", quality=90, progressive=True, subsampling=0), "progressive 4:4:4")
    add_variant("jpeg_optimized.jpg", save_pil(roc, "JPEG", quality=70, optimize=True), "optimised Huffman")
    add_variant("jpeg_restart.jpg", save_pil(cat, "JPEG", quality=80, restart_marker_blocks=2),
                "restart markers")
    add_variant("jpeg_q100.jpg", save_pil(cof, "JPEG", quality=100, subsampling=0), "quality 100")
    add_variant("jpeg_rgb_colorspace.jpg", save_pil(cat, "JPEG", quality=90, keep_rgb=True, subsampling=0),
                "3-component RGB (no YCbCr, Adobe transform 0)")
    add_variant("jpeg_gray.jpg", save_pil(cat.convert("L"), "JPEG", quality=90), "grayscale")
    add_variant("jpeg_gray_progressive.jpg", save_pil(cof.convert("L"), "JPEG", quality=80, progressive=True),
                "grayscale progressive")
    add_variant("jpeg_cmyk.jpg", save_pil(cof.convert("CMYK"), "JPEG", quality=90), "CMYK (Adobe, inverted)")
    cmyk = np.asarray(cat.convert("CMYK")).copy()
    cmyk[..., 3] = (np.arange(cat.size[0])[None, :] * 3 % 200).astype(np.uint8)  # non-zero K
    add_variant("jpeg_cmyk_k.jpg", save_pil(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=90),
                "CMYK with black channel")
    for o in range(1, 9):
        add_variant(f"jpeg_exif_orient{o}.jpg",
                    save_pil(wide, "JPEG", quality=90, exif=exif_orientation(o, big_endian=True)),
                    f"EXIF orientation {o} (big-endian TIFF)")
    for o in (3, 6, 8):
        add_variant(f"jpeg_exif_le_orient{o}.jpg",
                    save_pil(wide, "JPEG", quality=90, exif=exif_orientation(o, big_endian=False)),
                    f"EXIF orientation {o} (little-endian TIFF)")
    add_variant("jpeg_exif_orient0.jpg", save_pil(wide, "JPEG", quality=90, exif=exif_orientation(0)),
                "EXIF orientation 0 (invalid: ignored)")
    add_variant("jpeg_exif_orient9.jpg", save_pil(wide, "JPEG", quality=90, exif=exif_orientation(9)),
                "EXIF orientation 9 (invalid: ignored)")
    add_variant("jpeg_xmp_orient6.jpg", save_pil(wide, "JPEG", quality=90, xmp=xmp_orientation(6)),
                "XMP tiff:Orientation 6, no EXIF")
    add_variant("jpeg_exif1_xmp6.jpg",
                save_pil(wide, "JPEG", quality=90, exif=exif_orientation(1), xmp=xmp_orientation(6)),
                "EXIF orientation 1 wins over XMP 6")

    # --- PNG ------------------------------------------------------------------------------------
    rgb = np.asarray(cof)
    h, w, _ = rgb.shape
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = ((xx * 255) // (w - 1)).astype(np.uint8)
    alpha[:, : w // 4] = 0  # fully transparent pixels with non-zero colour: must be kept
    rgba = np.dstack([rgb, alpha])
    gray = np.asarray(cof.convert("L"))
    add_variant("png_rgb.png", save_pil(cof, "PNG"), "RGB 8-bit")
    add_variant("png_rgba.png", save_pil(Image.fromarray(rgba, "RGBA"), "PNG"), "RGBA 8-bit (alpha dropped)")
    add_variant("png_gray.png", save_pil(Image.fromarray(gray, "L"), "PNG"), "grayscale 8-bit")
    add_variant("png_gray_alpha.png", save_pil(Image.fromarray(np.dstack([gray, alpha]), "LA"), "PNG"),
                "gray+alpha 8-bit")
    pal_img = cof.quantize(colors=200, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    add_variant("png_palette.png", save_pil(pal_img, "PNG"), "palette 8-bit")
    add_variant("png_palette_trns.png", save_pil(pal_img, "PNG", transparency=bytes(range(0, 200, 3))),
                "palette with tRNS alpha table")
    pal16 = cof.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    add_variant("png_palette_4bit.png", save_pil(pal16, "PNG", bits=4), "palette 4-bit")
    add_variant("png_palette_4bit_trns.png", save_pil(pal16, "PNG", bits=4, transparency=3),
                "palette 4-bit, one transparent index")
    add_variant("png_1bit.png", save_pil(cof.convert("1"), "PNG"), "1-bit (mode 1)")
    add_variant("png_gray_trns.png", save_pil(Image.fromarray(gray, "L"), "PNG", transparency=int(gray[5, 5])),
                "grayscale with tRNS")
    add_variant("png_rgb_trns.png", save_pil(cof, "PNG", transparency=tuple(int(v) for v in rgb[5, 5])),
                "RGB with tRNS")
    for bits in (2, 4):
        levels = (gray.astype(np.int32) >> (8 - bits))
        rows = [pack_bits(levels[y], bits) for y in range(h)]
        add_variant(f"png_gray_{bits}bit.png", png_bytes(w, h, bits, 0, rows), f"grayscale {bits}-bit")
    # 16-bit data. Values are chosen so that both bytes matter: v = 257*x + noise.
    rng = np.random.default_rng(1234)
    g16 = gray.astype(np.uint32) * 257
    g16 = np.clip(g16.astype(np.int64) + rng.integers(-200, 200, g16.shape), 0, 65535).astype(np.uint16)
    g16_low = gray.astype(np.uint16)        # 16-bit gray whose values are all < 256
    g16_mix = g16.copy()
    g16_mix[: h // 2] = g16_low[: h // 2]
    rgb16 = np.clip(rgb.astype(np.int64) * 257 + rng.integers(-300, 300, rgb.shape), 0, 65535).astype(np.uint16)
    a16 = (alpha.astype(np.uint16) * 257)

    def be16_rows(arr):
        return [arr[y].astype(">u2").tobytes() for y in range(arr.shape[0])]

    add_variant("png_gray16.png", png_bytes(w, h, 16, 0, be16_rows(g16)), "grayscale 16-bit (I;16)")
    add_variant("png_gray16_mixed.png", png_bytes(w, h, 16, 0, be16_rows(g16_mix)),
                "grayscale 16-bit, half the rows < 256")
    add_variant("png_gray16_trns.png", png_bytes(w, h, 16, 0, be16_rows(g16_mix),
                                                 [(b"tRNS", struct.pack(">H", int(g16_mix[2, 2])))]),
                "grayscale 16-bit with tRNS")
    add_variant("png_rgb16.png", png_bytes(w, h, 16, 2, be16_rows(rgb16.reshape(h, -1))), "RGB 16-bit")
    add_variant("png_rgba16.png", png_bytes(w, h, 16, 6, be16_rows(np.dstack([rgb16, a16]).reshape(h, -1))),
                "RGBA 16-bit")
    add_variant("png_la16.png", png_bytes(w, h, 16, 4, be16_rows(np.dstack([g16_mix, a16]).reshape(h, -1))),
                "gray+alpha 16-bit")

    def interlaced_rows(arr, pack):
        def rows(x0, y0, dx, dy):
            sub = arr[y0::dy, x0::dx]
            return [pack(r) for r in sub]
        return rows

    add_variant("png_rgb_interlaced.png",
                png_bytes(w, h, 8, 2, interlaced_rows(rgb, lambda r: r.tobytes()), interlaced=True),
                "RGB Adam7 interlaced")
    add_variant("png_gray16_interlaced.png",
                png_bytes(w, h, 16, 0, interlaced_rows(g16_mix, lambda r: r.astype(">u2").tobytes()),
                          interlaced=True), "grayscale 16-bit interlaced")
    wr = np.asarray(wide)
    wh, ww, _ = wr.shape
    for o in (3, 6):
        add_variant(f"png_exif_orient{o}.png",
                    png_bytes(ww, wh, 8, 2, [wr[y].tobytes() for y in range(wh)],
                              [(b"eXIf", exif_orientation(o)[6:])]),
                    f"PNG eXIf orientation {o} (before IDAT)")
    add_variant("png_exif_after_idat_orient8.png",
                png_bytes(ww, wh, 8, 2, [wr[y].tobytes() for y in range(wh)],
                          after_idat=[(b"eXIf", exif_orientation(8, big_endian=False)[6:])]),
                "PNG eXIf orientation 8 after IDAT")

    # palette indices past the end of PLTE: Pillow shows black
    add_variant("png_palette_out_of_range.png",
                png_bytes(w, h, 8, 3, [((idx_row.astype(np.int32) * 7) % 256).astype(np.uint8).tobytes()
                                       for idx_row in np.asarray(pal16)],
                          [(b"PLTE", bytes(np.asarray(pal16.getpalette()[:48], np.uint8)))]),
                "palette indices past the end of PLTE (black)")
    # EXIF as ImageMagick stores it (zTXt "Raw profile type exif"), XMP in iTXt
    from PIL import PngImagePlugin
    raw = exif_orientation(6)[6:]
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", f"\nexif\n{len(raw):8}\n{raw.hex()}\n", zip=True)
    add_variant("png_raw_profile_exif_orient6.png", save_pil(wide, "PNG", pnginfo=info),
                "PNG zTXt 'Raw profile type exif' orientation 6")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp_orientation(8).decode())
    add_variant("png_xmp_orient8.png", save_pil(wide, "PNG", pnginfo=info), "PNG iTXt XMP orientation 8")
    add_variant("png_apng.png", save_pil(cof, "PNG", save_all=True, append_images=[cof.rotate(180)], duration=50),
                "APNG (default image = first frame)")

    # --- BMP / GIF / PNM --------------------------------------------------------------------------
    add_variant("bmp_rgb.bmp", save_pil(cat, "BMP"), "BMP 24-bit")
    add_variant("bmp_palette.bmp", save_pil(pal_img, "BMP"), "BMP 8-bit palette")
    add_variant("bmp_gray.bmp", save_pil(cat.convert("L"), "BMP"), "BMP 8-bit gray")
    add_variant("bmp_1bit.bmp", save_pil(cat.convert("1"), "BMP"), "BMP 1-bit")
    add_variant("bmp_rgba.bmp", save_pil(Image.fromarray(rgba, "RGBA"), "BMP"), "BMP 32-bit with alpha")
    add_variant("bmp_565.bmp", bmp16_bytes(rgb, True), "BMP 16-bit 5-6-5 bitfields")
    add_variant("bmp_555.bmp", bmp16_bytes(rgb, False), "BMP 16-bit 5-5-5")
    bmp = bytearray(save_pil(cat, "BMP"))
    # top-down variant: negative height, rows stored top first
    hdr_h = struct.unpack_from("<i", bmp, 22)[0]
    off = struct.unpack_from("<I", bmp, 10)[0]
    row_bytes = (cat.size[0] * 3 + 3) // 4 * 4
    rows_ = [bytes(bmp[off + i * row_bytes: off + (i + 1) * row_bytes]) for i in range(hdr_h)]
    struct.pack_into("<i", bmp, 22, -hdr_h)
    bmp[off:] = b"".join(reversed(rows_))
    add_variant("bmp_topdown.bmp", bytes(bmp), "BMP 24-bit top-down")

    add_variant("gif_basic.gif", save_pil(pal_img, "GIF", interlace=False), "GIF 8-bit palette")
    add_variant("gif_interlaced.gif", save_pil(pal_img, "GIF", interlace=True), "GIF interlaced")
    add_variant("gif_trns.gif", save_pil(pal_img, "GIF", transparency=7), "GIF with transparent index")
    pal = np.zeros((256, 3), np.uint8)
    pal[:200] = np.asarray(pal_img.getpalette()[: 600], np.uint8).reshape(200, 3)
    pal[250] = (10, 200, 30)
    idx = np.asarray(pal_img)
    fw, fh = 40, 30
    sub = idx[5:5 + fh, 7:7 + fw].copy()
    sub[::5, ::3] = 250
    sub2 = np.full_like(sub, 17)
    add_variant("gif_partial_frame.gif",
                gif_bytes(w, h, pal, [(7, 5, fw, fh, sub, None), (0, 0, fw, fh, sub2, None)], bg_index=3),
                "GIF: first frame smaller than the canvas, background index 3, animated")
    add_variant("gif_partial_frame_trns.gif",
                gif_bytes(w, h, pal, [(7, 5, fw, fh, sub, 250)], bg_index=3),
                "GIF: partial first frame with a transparent index")
    small_pal = np.zeros((256, 3), np.uint8)
    small_pal[:4] = [(10, 20, 30), (40, 50, 60), (70, 80, 90), (100, 110, 120)]
    oor = (np.arange(w * h).reshape(h, w) % 16).astype(np.uint8)
    gif_small = bytearray(gif_bytes(w, h, small_pal, [(0, 0, w, h, oor, None)]))
    gif_small[10] = 0xF1  # global colour table of 4 entries ...
    del gif_small[13 + 12: 13 + 768]  # ... so drop the rest of the table
    add_variant("gif_palette_out_of_range.gif", bytes(gif_small),
                "GIF indices past the end of a 4-entry colour table (black)")
    gray_pal = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    add_variant("gif_gray_palette.gif", gif_bytes(w, h, gray_pal, [(0, 0, w, h, gray, None)]),
                "GIF with identity gray palette (Pillow mode L)")
    frames = [pal_img, cof.rotate(90).quantize(colors=64)]
    add_variant("gif_animated.gif", save_pil(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                             duration=100, loop=0), "GIF animated (first frame)")

    add_variant("pnm_rgb.ppm", save_pil(cat, "PPM"), "PPM P6 maxval 255")
    add_variant("pnm_gray.pgm", save_pil(cat.convert("L"), "PPM"), "PGM P5 maxval 255")
    add_variant("pnm_bitmap.pbm", save_pil(cat.convert("1"), "PPM"), "PBM P4")
    cat_arr = np.asarray(cat)
    ch, cw, _ = cat_arr.shape
    m100 = (cat_arr.astype(np.int32) * 100 + 127) // 255
    add_variant("pnm_rgb_maxval100.ppm",
                b"P6\n# maxval 100\n%d %d\n100\n" % (cw, ch) + m100.astype(np.uint8).tobytes(),
                "PPM P6 maxval 100 (rescaled)")
    g = np.asarray(cat.convert("L")).astype(np.int64)
    add_variant("pnm_gray16.pgm", b"P5\n%d %d\n65535\n" % (cw, ch) + (g * 257 - (g > 128) * 250).astype(">u2").tobytes(),
                "PGM P5 maxval 65535 (mode I)")
    add_variant("pnm_gray_small16.pgm", b"P5\n%d %d\n65535\n" % (cw, ch) + g.astype(">u2").tobytes(),
                "PGM P5 maxval 65535 with values < 256")
    add_variant("pnm_gray_maxval1000.pgm",
                b"P5\n%d %d\n1000\n" % (cw, ch) + (g * 1000 // 255 // 7).astype(">u2").tobytes(),
                "PGM P5 maxval 1000 (rescaled to 65535, then clipped)")
    rgb16p = (cat_arr.astype(np.int64) * 257 + 100).clip(0, 65535)
    add_variant("pnm_rgb16.ppm", b"P6\n%d %d\n65535\n" % (cw, ch) + rgb16p.astype(">u2").tobytes(),
                "PPM P6 16-bit (rescaled to 8-bit)")
    tiny = cat_arr[:5, :6]
    plain = "P3\n# plain\n6 5\n255\n" + "\n".join(" ".join(str(int(v)) for v in row.reshape(-1)) for row in tiny) + "\n"
    add_variant("pnm_plain.ppm", plain.encode(), "PPM P3 (plain text)")
    plain_g = "P2\n6 5\n15\n" + "\n".join(" ".join(str(int(v) // 17) for v in row) for row in g[:5, :6]) + "\n"
    add_variant("pnm_plain_gray.pgm", plain_g.encode(), "PGM P2 maxval 15 (plain text)")
    plain_b = "P1\n6 5\n" + "\n".join("".join("1" if v < 128 else "0" for v in row) for row in g[:5, :6]) + "\n"
    add_variant("pnm_plain_bitmap.pbm", plain_b.encode(), "PBM P1 (plain text)")

    # --- WebP ----------------------------------------------------------------------------------
    add_variant("webp_lossy.webp", save_pil(cat, "WEBP", quality=80), "WebP lossy")
    add_variant("webp_lossy_alpha.webp", save_pil(Image.fromarray(rgba, "RGBA"), "WEBP", quality=80),
                "WebP lossy with alpha")
    add_variant("webp_lossless.webp", save_pil(cof, "WEBP", lossless=True), "WebP lossless")
    add_variant("webp_lossless_alpha.webp",
                save_pil(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True),
                "WebP lossless with alpha (exact)")
    for o in (6, 3):
        add_variant(f"webp_exif_orient{o}.webp",
                    riff_webp_with_chunks(save_pil(wide, "WEBP", quality=85), [(b"EXIF", exif_orientation(o)[6:])]),
                    f"WebP EXIF orientation {o}")
    add_variant("webp_exif_prefixed_orient8.webp",
                riff_webp_with_chunks(save_pil(wide, "WEBP", lossless=True), [(b"EXIF", exif_orientation(8))]),
                "WebP EXIF chunk with Exif\\0\\0 prefix, orientation 8")
    add_variant("webp_xmp_orient5.webp",
                riff_webp_with_chunks(save_pil(wide, "WEBP", quality=85), [(b"XMP ", xmp_orientation(5))]),
                "WebP XMP orientation 5")
    wframes = [cat, cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    add_variant("webp_animated.webp",
                save_pil(wframes[0], "WEBP", save_all=True, append_images=wframes[1:], duration=100, lossless=True),
                "WebP animated (first frame)")

    # --- Real photos: full decode and bicubic resize ---------------------------------------------------
    # A full 640x427 decode would be 820 kB of golden data: keep a 64-row band through the middle
    # (the resize and SigLIP goldens below check the rest of the decode indirectly).
    band = load_image_golden(PHOTOS / "rocket.jpg")[180:244]
    np.save(OUT / "photo_rocket_rows180-243.npy", np.ascontiguousarray(band))
    manifest["decode"].append({"file": "../photos/rocket.jpg", "golden": "photo_rocket_rows180-243.npy",
                               "what": "real photo, baseline JPEG 640x427 (rows 180-243)", "exact": True,
                               "row0": 180})

    sizes = {
        "chelsea.png": [(448, 448), (56, 56), (1, 1)],
        # (224x224 of a photo is checked through the SigLIP golden of rocket.jpg below)
        "coffee.png": [(150, 100), (56, 56), (97, 131), (600, 7)],
        "rocket.jpg": [(56, 56), (3, 2), (123, 77)],
    }
    for name, targets in sizes.items():
        src = load_image_golden(PHOTOS / name)
        im = Image.fromarray(src)
        for tw, th in targets:
            out = np.asarray(im.resize((tw, th), Image.Resampling.BICUBIC))
            stem = f"resize_{name.split('.')[0]}_{tw}x{th}"
            np.save(OUT / f"{stem}.npy", out)
            manifest["resize"].append({"input": f"../photos/{name}", "width": tw, "height": th,
                                       "golden": f"{stem}.npy"})
    # upscaling a small (stored) image; one-pass cases (only one dimension changes)
    for src_name, (tw, th) in (("png_rgb.png", (224, 224)), ("png_rgb.png", (200, 133)), ("jpeg_420.jpg", (91, 150)),
                               ("png_rgb.png", (64, 100)), ("png_rgb.png", (150, 43)), ("png_rgb.png", (64, 20)),
                               ("png_rgb.png", (31, 43))):
        im = Image.fromarray(load_image_golden(OUT / src_name))
        out = np.asarray(im.resize((tw, th), Image.Resampling.BICUBIC))
        stem = f"resize_{src_name.split('.')[0]}_{tw}x{th}"
        np.save(OUT / f"{stem}.npy", out)
        manifest["resize"].append({"input": src_name, "width": tw, "height": th, "golden": f"{stem}.npy"})

    # --- SigLIP processor (transformers' PIL backend = the slow processor) ----------------------
    from transformers import SiglipImageProcessorPil
    from transformers.image_utils import load_image

    def processor(size, do_resize=True):
        return SiglipImageProcessorPil(do_resize=do_resize, size={"height": size, "width": size}, resample=3,
                                       do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                                       image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
                                       do_convert_rgb=True)

    for name, size in (("rocket.jpg", 224), ("coffee.png", 56)):
        pv = processor(size)(load_image(str(PHOTOS / name)), return_tensors="np")["pixel_values"]
        pv = np.ascontiguousarray(pv, dtype=np.float32)
        assert pv.shape == (1, 3, size, size), pv.shape
        stem = f"siglip_{name.split('.')[0]}_{size}"
        np.save(OUT / f"{stem}.npy", pv)
        manifest["siglip"].append({"input": f"../photos/{name}", "size": size, "golden": f"{stem}.npy"})
    ramp = np.zeros((16, 16, 3), np.uint8)
    ramp[..., 0] = np.arange(256).reshape(16, 16)
    ramp[..., 1] = 255 - np.arange(256).reshape(16, 16)
    ramp[..., 2] = (np.arange(256) * 7 % 256).reshape(16, 16)
    Image.fromarray(ramp).save(OUT / "ramp.png")
    pv = processor(16, do_resize=False)(Image.open(OUT / "ramp.png"), return_tensors="np")["pixel_values"]
    np.save(OUT / "siglip_ramp.npy", np.ascontiguousarray(pv, dtype=np.float32))
    manifest["siglip"].append({"input": "ramp.png", "size": 16, "golden": "siglip_ramp.npy"})

    # --- big_vision bilinear (needs TensorFlow; optional) ----------------------------------------
    if args.tf_python:
        jobs = []
        for name, tw, th in (("rocket.jpg", 224, 224), ("coffee.png", 56, 56), ("png_rgb.png", 112, 112),
                             ("chelsea.png", 300, 100), ("jpeg_420.jpg", 67, 45)):
            path = PHOTOS / name if (PHOTOS / name).exists() else OUT / name
            stem = f"bigvision_{name.split('.')[0]}_{tw}x{th}"
            np.save(OUT / f"{stem}_input.npy", load_image_golden(path))
            jobs.append((str(OUT / f"{stem}_input.npy"), tw, th, str(OUT / f"{stem}.npy")))
            rel = f"../photos/{name}" if (PHOTOS / name).exists() else name
            manifest["bigvision"].append({"input": rel, "width": tw, "height": th, "golden": f"{stem}.npy"})
        np.save(OUT / "bigvision_ramp_input.npy", np.asarray(Image.open(OUT / "ramp.png")))
        jobs.append((str(OUT / "bigvision_ramp_input.npy"), 0, 0, str(OUT / "bigvision_ramp.npy")))
        manifest["bigvision"].append({"input": "ramp.png", "width": 0, "height": 0, "golden": "bigvision_ramp.npy"})
        subprocess.run([args.tf_python, "-c", BIGVISION_TF_SCRIPT, json.dumps(jobs)], check=True)
        for src_npy, _, _, _ in jobs:
            Path(src_npy).unlink()
    elif kept_bigvision:
        print("no --tf-python given: kept the existing big_vision goldens", file=sys.stderr)
    else:
        print("no --tf-python given: big_vision goldens not made", file=sys.stderr)

    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (OUT / "README.md").write_text(README)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB to {OUT}")


if __name__ == "__main__":
    main()
