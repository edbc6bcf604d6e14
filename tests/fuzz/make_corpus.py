#!/usr/bin/env python3
"""make_corpus: writes the seed corpora of tests/fuzz/corpus/NAME/ (one
folder per harness fuzz_NAME): a few tiny valid files of every kind each
reader accepts, and edge cases just inside and just outside its rules.

Run from anywhere: python3 tests/fuzz/make_corpus.py (standard library
only). Files are rewritten in place; the output is deterministic, so a
rerun changes nothing unless this script changed. Hand-written seeds may
sit beside the generated ones: they are never removed."""
import gzip
import json
import os
import struct
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(harness, name, data):
    os.makedirs(os.path.join(HERE, harness), exist_ok=True)
    with open(os.path.join(HERE, harness, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def gz(data):
    return gzip.compress(data, mtime=0)


# ---- safetensors (and checkpoints, which are safetensors files) ----

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "F64": 8, "I64": 8, "U8": 1}


def safetensors(tensors, meta=None, pad=0):
    """tensors: [(name, dtype, shape)], packed in order with bytes 1, 2, ..."""
    header, data = {}, b""
    for name, dtype, shape in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + n]}
        data += bytes((len(data) + k) % 251 + 1 for k in range(n))
    if meta:
        header["__metadata__"] = meta
    text = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + data


def st_corpus():
    put("safetensors", "all_dtypes", safetensors(
        [(d.lower(), d, [2]) for d in SIZES], {"format": "pt"}))
    put("safetensors", "scalar_and_empty", safetensors(
        [("s", "F32", []), ("e", "F32", [0, 3])]))
    put("safetensors", "padded", safetensors([("w", "F16", [2, 3])], pad=5))
    put("safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")
    overlap = json.dumps(
        {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
         "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}).encode()
    put("safetensors", "overlap", struct.pack("<Q", len(overlap)) + overlap + b"abc")
    control = b'{"a\\nb": {"dtype": "X", "shape": [], "data_offsets": [0, 0]}}'
    put("safetensors", "control_in_name", struct.pack("<Q", len(control)) + control)
    put("safetensors", "truncated", safetensors([("w", "F32", [4])])[:-3])


# ---- checkpoints of fuzz_checkpoint.c's program ----

PROGRAM = [("w", "F32", [2, 3]), ("b", "F16", [3]), ("g", "BF16", [1, 1, 2]),
           ("ema.w", "F32", [2, 3]), ("train.iteration", "I32", []),
           ("hp.lr", "F32", [])]


def ckpt_corpus():
    meta = {"batch": "8", "data_position": "64", "data_flip": "1"}
    put("checkpoint", "full", safetensors(PROGRAM, meta))
    put("checkpoint", "trainable_only", safetensors(PROGRAM[:3]))
    put("checkpoint", "as_f64", safetensors(
        [(n, "F64", s) for n, _, s in PROGRAM]))
    put("checkpoint", "missing_param", safetensors(PROGRAM[1:]))
    put("checkpoint", "wrong_shape", safetensors(
        [("w", "F32", [3, 2])] + PROGRAM[1:]))


# ---- JSON ----

def json_corpus():
    put("json", "object", '{"a": [1, -2.5e3, 0.25, true, false, null], "b": {"c": "d"}}')
    put("json", "escapes", r'["\"\\\/\b\f\n\r\t", "\u00e9\u20ac\ud83d\ude00", "\u0000"]')
    put("json", "numbers", "[0, -0, 9223372036854775807, 9223372036854775808, "
        "-9223372036854775808, 1e400, 1E-400, 12.5e+2]")
    put("json", "duplicate_keys", ' {"k": 1, "k": 2, "": {}} \n')
    put("json", "deep", "[" * 64 + "]" * 64)
    put("json", "too_deep", "[" * 65 + "]" * 65)
    put("json", "bad_surrogate", r'"\ud800x"')


# ---- IDX (images and labels) ----

def idx_images(n, h, w, extra=b""):
    return (struct.pack(">IIII", 0x803, n, h, w)
            + bytes(k % 256 for k in range(n * h * w)) + extra)


def idx_corpus():
    put("idx", "images", idx_images(2, 3, 4))
    put("idx", "images.gz", gz(idx_images(3, 5, 2)))
    put("idx", "labels", struct.pack(">II", 0x801, 3) + b"\x01\x02\x09")
    put("idx", "labels.gz", gz(struct.pack(">II", 0x801, 2) + b"\x00\x07"))
    put("idx", "trailing", idx_images(1, 2, 2, b"x"))
    put("idx", "short", idx_images(2, 2, 2)[:-1])
    put("idx", "truncated.gz", gz(idx_images(2, 4, 4))[:-6])


# ---- CIFAR-10 batches ----

def cifar_records(labels):
    return b"".join(bytes([l]) + bytes((l + k) % 256 for k in range(3072))
                    for l in labels)


def cifar_corpus():
    put("cifar", "one", cifar_records([3]))
    put("cifar", "two.gz", gz(cifar_records([0, 9])))
    put("cifar", "bad_label.gz", gz(cifar_records([1, 10])))
    put("cifar", "partial", cifar_records([5])[:100])


# ---- PNG ----

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(w, h, depth, colour, interlace=0, palette=0):
    """Rows of filter k % 5 and arbitrary bytes (every filter, any value);
    with a palette of that many colours, unfiltered rows of 8-bit indices
    below it."""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw, k = b"", 0
    for x0, y0, dx, dy in passes:
        pw, ph = max(0, (w - x0 + dx - 1) // dx), max(0, (h - y0 + dy - 1) // dy)
        row = (pw * CHANNELS[colour] * depth + 7) // 8
        for _ in range(ph if pw else 0):
            raw += bytes([0 if palette else k % 5])
            raw += bytes((k * 37 + i * 11) % (palette or 256) for i in range(row))
            k += 1
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    plte = chunk(b"PLTE", bytes(range(3 * palette))) if palette else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + plte
            + chunk(b"tEXt", b"k\x00v") + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def png_corpus():
    put("png", "grey8.png", png(4, 3, 8, 0))
    put("png", "grey1.png", png(9, 2, 1, 0))
    put("png", "grey16.png", png(3, 3, 16, 0))
    put("png", "rgb8.png", png(3, 2, 8, 2))
    put("png", "rgba16.png", png(2, 2, 16, 6))
    put("png", "grey_alpha.png", png(2, 3, 8, 4))
    put("png", "palette8.png", png(5, 3, 8, 3, palette=4))
    put("png", "adam7_rgb.png", png(7, 5, 8, 2, interlace=1))
    put("png", "adam7_grey2.png", png(9, 9, 2, 0, interlace=1))


if __name__ == "__main__":
    st_corpus()
    ckpt_corpus()
    json_corpus()
    idx_corpus()
    cifar_corpus()
    png_corpus()
