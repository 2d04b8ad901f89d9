#!/usr/bin/python3
"""Times the classic Pillow + numpy preprocessing on the benchmark images.

    /usr/bin/python3 scripts/bench-pillow.py [-n RUNS] [IMAGE...]

The pipeline and spec are those of the resnet50 model, the ones
BenchmarkProcess in prep/internal/imageprep times: Image.open ->
ImageOps.exif_transpose -> convert("RGB") -> resize((224, 224), BICUBIC) ->
float32 (x/255 - mean) / std -> CHW, and the minimal pipeline without
exif_transpose (Image.open -> convert("RGB") -> resize -> numpy, the
cheapest Pillow can be), reported as BenchmarkPillowMinimal. One thread.
For each image and pipeline it prints
the minimum and median wall time and the minimum thread CPU time per image
(CPU time is the fairer number on a busy machine), in the format of go test
benchmarks so that benchstat can read both.
"""

import argparse
import io
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_IMAGES = ["photo-500x375.jpg", "photo-1024x768.jpg", "chelsea.png"]

SCALE = np.float32(1 / 255)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(data):
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    im = im.convert("RGB")
    im = im.resize((224, 224), Image.Resampling.BICUBIC)
    x = np.asarray(im, dtype=np.float32) * SCALE
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_minimal(data):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    im = im.resize((224, 224), Image.Resampling.BICUBIC)
    x = np.asarray(im, dtype=np.float32) * SCALE
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200, help="runs per image")
    ap.add_argument("images", nargs="*", default=DEFAULT_IMAGES)
    args = ap.parse_args()
    for name in args.images:
        path = name if os.path.exists(name) else os.path.join(ROOT, "testdata/images", name)
        with open(path, "rb") as f:
            data = f.read()
        for bench, fn in (("BenchmarkPillow", preprocess), ("BenchmarkPillowMinimal", preprocess_minimal)):
            for _ in range(5):  # warm up
                fn(data)
            wall, cpu = [], []
            for _ in range(args.n):
                w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                fn(data)
                c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
                wall.append(w1 - w0)
                cpu.append(c1 - c0)
            print(f"{bench}/{os.path.basename(path)} {args.n} {min(wall)} ns/op "
                  f"{statistics.median(wall):.0f} median-ns/op {min(cpu)} cpu-ns/op")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
