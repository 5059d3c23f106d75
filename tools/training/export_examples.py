#!/usr/bin/python3
"""Writes a handful of Fashion-MNIST test images as PNG for the README's `mnet classify` example:
the first test image of each class, named <index>-<class>.png (docs/examples/fashion-mnist/).

    /usr/bin/python3 tools/training/export_examples.py

Reads Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, MIT licence, Zalando Research).
"""
import gzip
import os

import numpy as np
from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "examples", "fashion-mnist")
NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read(name, offset):
    with gzip.open(os.path.join(SRC, name)) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    images = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read("t10k-labels-idx1-ubyte.gz", 8)
    os.makedirs(OUT, exist_ok=True)
    for k, name in enumerate(NAMES):
        i = int(np.argmax(labels == k))
        Image.fromarray(images[i], mode="L").save(os.path.join(OUT, f"{i:04d}-{name}.png"))
        print(f"{i:04d}-{name}.png")


if __name__ == "__main__":
    main()
