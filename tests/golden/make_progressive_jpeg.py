"""A progressive JPEG for tests/test_images.c (run by hand):

    /opt/ddpmc-venv/bin/python tests/golden/make_progressive_jpeg.py

Writes tests/golden/progressive.jpg: image 7 of test_images.c's pat(),
6 x 5 RGB, saved by Pillow (libjpeg) progressive at quality 100 without
chroma subsampling. Its first (DC) scans name AC table 0 before any DHT
defines it, as libjpeg's progressive files do: the runtime's check that a
scan's Huffman tables are defined must count only the tables the scan
decodes with.
"""
import os

import numpy as np
from PIL import Image


def pat(i, c, y, x):
    return (i * 37 + c * 101 + y * 13 + x * 7 + 3) % 256


h, w = 6, 5
px = np.array([[[pat(7, c, y, x) for c in range(3)] for x in range(w)] for y in range(h)],
              dtype=np.uint8)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "progressive.jpg")
Image.fromarray(px, "RGB").save(out, progressive=True, quality=100, subsampling=0)
print(out, os.path.getsize(out), "bytes")
