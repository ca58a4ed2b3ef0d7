"""Writes an image folder for the input-pipeline benchmark (bench/input_pipeline.sh): <out>/train
and <out>/val, CLASSES class folders of JPEG files (quality 90) of W x H, each a smooth random
colour field with a few random ellipses, so that decoding and resampling see photo-like content.

    python bench/make_image_folder.py OUT [--classes 10] [--train 64] [--val 16] [--size 500x375]
"""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--train", type=int, default=64, help="images per class in train/")
    p.add_argument("--val", type=int, default=16, help="images per class in val/")
    p.add_argument("--size", default="500x375", help="W x H (ImageNet's typical size by default)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if os.path.exists(a.out) and os.listdir(a.out):
        raise SystemExit(f"{a.out}: exists and is not empty; choose another folder")
    w, h = (int(v) for v in a.size.lower().split("x"))
    rng = np.random.default_rng(a.seed)
    for split, count in (("train", a.train), ("val", a.val)):
        for c in range(a.classes):
            folder = os.path.join(a.out, split, f"class{c:03d}")
            os.makedirs(folder)
            for i in range(count):
                coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
                img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
                draw = ImageDraw.Draw(img)
                for _ in range(3):
                    x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
                    x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
                    draw.ellipse((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
                img.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


if __name__ == "__main__":
    main()
