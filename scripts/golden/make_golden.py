#!/usr/bin/python3
"""Reference tensors for prep/internal/imageprep, computed with Pillow.

Run from the repository root with Debian's Python (python3-pil, python3-numpy):

    /usr/bin/python3 scripts/golden/make_golden.py

It writes testdata/golden/index.json, pixels.bin.gz and tensors.bin.gz, and
creates the format-coverage inputs in testdata/golden/inputs/ when they are
missing (--inputs regenerates them). The reference pipeline is the classic
prep service's: Image.open -> ImageOps.exif_transpose -> RGB (transparent
pixels pasted onto the background with their alpha as mask) -> resize
(SQUASH: im.resize((W, H)); SHORTER_SIDE_CENTER_CROP: torchvision's Resize(S)
+ CenterCrop((H, W)) arithmetic) -> numpy float32 (x*scale - mean) / std.

For every (image, geometry) case pixels.bin.gz holds the resized 8-bit image
(HWC, channels in the spec's color order): the Go test runs the same geometry
with scale 1, mean 0, std 1, so its tensor holds exactly those 8-bit levels.
For the production specs (resnet50, colors, squares) tensors.bin.gz also holds
numpy's float32 NCHW tensor for some images, compared value for value.
"""

import argparse
import ctypes
import ctypes.util
import gzip
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES = "testdata/images"
GOLDEN = "testdata/golden"
INPUTS = GOLDEN + "/inputs"
GO_TESTDATA = "/usr/local/go/src/image/testdata"

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
SCALE = 1 / 255

# Geometries: resize mode, interpolation, size, color order, background.
GEOMETRIES = {
    # the resnet50 model's spec
    "squash224-bicubic": dict(mode="SQUASH", interp="BICUBIC", width=224, height=224),
    # torchvision's classic Resize(256) + CenterCrop(224)
    "crop256-224-bicubic": dict(mode="SHORTER_SIDE_CENTER_CROP", interp="BICUBIC", width=224, height=224, shorter=256),
    # the colors model's spec
    "squash32-bilinear": dict(mode="SQUASH", interp="BILINEAR", width=32, height=32),
    # small, non-square, both modes, BGR and a colored background
    "crop40-36x32-bilinear": dict(mode="SHORTER_SIDE_CENTER_CROP", interp="BILINEAR", width=36, height=32, shorter=40),
    "squash48x40-bicubic-bgr": dict(mode="SQUASH", interp="BICUBIC", width=48, height=40, order="BGR", background=[0, 128, 255]),
    "crop57-49x45-bicubic": dict(mode="SHORTER_SIDE_CENTER_CROP", interp="BICUBIC", width=49, height=45, shorter=57),
    # upscaling (filter support not widened)
    "squash96x72-bilinear": dict(mode="SQUASH", interp="BILINEAR", width=96, height=72),
    # letterbox: a square canvas pads landscape images above and below,
    # portrait ones (and EXIF-rotated ones) left and right; a wide canvas
    # pads landscape images left and right too; a pad color in BGR order
    "letterbox64-bilinear": dict(mode="LETTERBOX", interp="BILINEAR", width=64, height=64),
    "letterbox72x40-bicubic-bgr": dict(mode="LETTERBOX", interp="BICUBIC", width=72, height=40, order="BGR",
                                       pad=[0, 128, 255], background=[10, 20, 30]),
    "letterbox45x63-bicubic": dict(mode="LETTERBOX", interp="BICUBIC", width=45, height=63, pad=[255, 0, 0]),
    # letterbox upscaling the small inputs (120x80 -> 150x100)
    "letterbox150x130-bilinear": dict(mode="LETTERBOX", interp="BILINEAR", width=150, height=130),
    # the squares detector's spec
    "letterbox640-bilinear": dict(mode="LETTERBOX", interp="BILINEAR", width=640, height=640),
}

# Full-tensor checks of the production specs.
SPECS = {
    "resnet50": dict(geometry="squash224-bicubic", scale=SCALE, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "colors": dict(geometry="squash32-bilinear", scale=SCALE, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "squares": dict(geometry="letterbox640-bilinear", scale=SCALE, mean=[0, 0, 0], std=[1, 1, 1]),
}

PHOTOS = [
    "chelsea.png", "coffee.png", "astronaut.png",
    "astronaut.jpg", "rocket.jpg", "photo-500x375.jpg", "photo-1024x768.jpg",
]
CROP224 = ["chelsea.png", "photo-500x375.jpg", "rocket.jpg"]
SMALL_GEOMETRIES = [g for g in GEOMETRIES if not g.startswith(("squash224", "crop256", "letterbox150", "letterbox640"))]
# Images of the squares spec's full-tensor check: landscape photos
# (downscaled), and portrait after EXIF rotation (upscaled: 60x90 and 50x70).
SQUARES = ["photo-500x375.jpg", "rocket.jpg", "orientation6.png", "orientation_6.jpg"]


def rel(*p):
    return os.path.join(ROOT, *p)


def png_filter(kind, row, prev, bpp):
    """Applies PNG filter kind (0-4) to row (bytes), given the previous row."""
    out = bytearray(len(row))
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if kind == 0:
            pred = 0
        elif kind == 1:
            pred = a
        elif kind == 2:
            pred = b
        elif kind == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out[i] = (x - pred) & 0xFF
    return bytes(out)


def write_png16(path, arr):
    """Writes a 16-bit gray+alpha, RGB or RGBA PNG (Pillow cannot save
    those), cycling through the five row filters."""
    h, w, c = arr.shape
    ctype = {2: 4, 3: 2, 4: 6}[c]
    bpp = 2 * c
    rows = [arr[y].astype(">u2").tobytes() for y in range(h)]
    raw = b""
    prev = bytes(len(rows[0]))
    for y, row in enumerate(rows):
        raw += bytes([y % 5]) + png_filter(y % 5, row, prev, bpp)
        prev = row

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def write_ycck_jpeg(path, cmyk):
    """Writes an Adobe YCCK JPEG with libturbojpeg (CMYK pixels -> YCCK)."""
    lib = ctypes.CDLL(ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0")
    lib.tjInitCompress.restype = ctypes.c_void_p
    h = lib.tjInitCompress()
    buf = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    hh, ww, _ = cmyk.shape
    src = np.ascontiguousarray(cmyk, dtype=np.uint8)
    TJPF_CMYK, TJSAMP_420 = 11, 2
    rc = lib.tjCompress2(ctypes.c_void_p(h), src.ctypes.data_as(ctypes.c_void_p), ww, 0, hh, TJPF_CMYK,
                         ctypes.byref(buf), ctypes.byref(size), TJSAMP_420, 90, 0)
    if rc != 0:
        sys.exit("tjCompress2 failed")
    data = ctypes.string_at(buf, size.value)
    lib.tjFree(buf)
    lib.tjDestroy(ctypes.c_void_p(h))
    with open(path, "wb") as f:
        f.write(data)


def make_inputs(force):
    """Small images covering the decoders' modes, derived from chelsea.png.

    Files that exist are kept unless force is set, so that adding an input
    does not change the others."""
    os.makedirs(rel(INPUTS), exist_ok=True)
    real_save = Image.Image.save

    def save(im, fp, *args, **kwargs):
        if force or not os.path.exists(fp):
            real_save(im, fp, *args, **kwargs)

    Image.Image.save = save
    try:
        _make_inputs(force)
    finally:
        Image.Image.save = real_save


def _make_inputs(force):
    base = Image.open(rel(IMAGES, "chelsea.png")).convert("RGB").resize((120, 80), Image.Resampling.LANCZOS)
    a = np.asarray(base)
    yy, xx = np.mgrid[0:80, 0:120]
    alpha = ((xx * 255) // 119).astype(np.uint8)  # left transparent -> right opaque
    alpha[:10] = 0
    alpha[-10:] = 255

    base.convert("L").save(rel(INPUTS, "gray.png"))
    Image.merge("LA", (base.convert("L"), Image.fromarray(alpha))).save(rel(INPUTS, "gray-alpha.png"))
    rgba = Image.fromarray(np.dstack([a, alpha]), "RGBA")
    rgba.save(rel(INPUTS, "rgba.png"))
    pal = base.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(rel(INPUTS, "palette.png"))
    pal.save(rel(INPUTS, "palette-trns.png"), transparency=0)
    pal.save(rel(INPUTS, "palette.gif"))
    pal.save(rel(INPUTS, "palette-trns.gif"), transparency=0)
    # 16 bit: distinct low bytes so that a decoder using them would show.
    a16 = a.astype(np.uint16) * 257 + (xx[..., None] % 7).astype(np.uint16)
    al16 = alpha.astype(np.uint16) * 257
    if force or not os.path.exists(rel(INPUTS, "rgb16.png")):
        write_png16(rel(INPUTS, "rgb16.png"), a16)
        write_png16(rel(INPUTS, "rgba16.png"), np.dstack([a16, al16]))
    base.save(rel(INPUTS, "rgb24.bmp"))
    pal.save(rel(INPUTS, "palette8.bmp"))
    base.save(rel(INPUTS, "lossless.webp"), lossless=True)
    base.save(rel(INPUTS, "lossy.webp"), quality=90)
    base.crop((0, 0, 117, 77)).save(rel(INPUTS, "lossy-odd-size.webp"), quality=90)
    rgba.save(rel(INPUTS, "alpha-lossless.webp"), lossless=True)
    rgba.crop((0, 0, 118, 78)).save(rel(INPUTS, "alpha-lossy.webp"), quality=80)
    # JPEG variants: subsampling, progressive, grayscale, CMYK/YCCK.
    base.save(rel(INPUTS, "444.jpg"), quality=90, subsampling=0)
    base.save(rel(INPUTS, "422.jpg"), quality=90, subsampling=1)
    base.save(rel(INPUTS, "420-progressive.jpg"), quality=90, subsampling=2, progressive=True)
    base.crop((0, 0, 117, 77)).save(rel(INPUTS, "odd-size.jpg"), quality=90)
    cmyk = 255 - np.dstack([a, np.minimum(a.min(axis=2), 255)[..., None] // 2])
    if force or not os.path.exists(rel(INPUTS, "ycck.jpg")):
        write_ycck_jpeg(rel(INPUTS, "ycck.jpg"), cmyk)
    # low bit depths and a transparent color key
    base.quantize(16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        rel(INPUTS, "palette-4bit.png"), bits=4)
    base.convert("1").save(rel(INPUTS, "gray-1bit.png"))
    key = tuple(int(v) for v in a[40, 60])
    base.save(rel(INPUTS, "rgb-key.png"), transparency=key)
    if force or not os.path.exists(rel(INPUTS, "ga16.png")):
        g16 = np.asarray(base.convert("L")).astype(np.uint16) * 257 + (xx % 5).astype(np.uint16)
        write_png16(rel(INPUTS, "ga16.png"), np.dstack([g16, al16]))
    # tiny images: fewer pixels than the filters' taps
    base.resize((3, 2), Image.Resampling.BOX).save(rel(INPUTS, "tiny-3x2.png"))
    base.resize((1, 1), Image.Resampling.BOX).save(rel(INPUTS, "tiny-1x1.png"))
    base.resize((5, 3), Image.Resampling.BOX).save(rel(INPUTS, "tiny-5x3.jpg"), quality=90)
    # EXIF orientation outside JPEG: PNG eXIf and WebP EXIF chunks
    exif = Image.Exif()
    exif[0x0112] = 6
    small = base.crop((0, 0, 90, 60))
    small.save(rel(INPUTS, "orientation6.png"), exif=exif.tobytes())
    exif[0x0112] = 3
    small.save(rel(INPUTS, "orientation3-lossless.webp"), lossless=True, exif=exif.tobytes())
    # a large JPEG, strongly downscaled by the 224 geometries
    big = Image.open(rel(IMAGES, "astronaut.png")).convert("RGB").resize((1600, 1066), Image.Resampling.BICUBIC)
    big.save(rel(INPUTS, "big-1600x1066.jpg"), quality=75)


def go_testdata_copies():
    """JPEGs from Go's image/testdata with unusual sampling factors."""
    names = ["video-001.q50.410.jpeg", "video-001.q50.411.jpeg", "video-001.q50.422.jpeg",
             "video-001.q50.440.jpeg", "video-001.q50.444.jpeg", "video-001.221212.jpeg",
             "video-001.restart2.jpeg", "video-001.rgb.jpeg", "video-001.separate.dc.progression.progressive.jpeg",
             "video-005.gray.q50.2x2.progressive.jpeg", "video-001.interlaced.gif"]
    for n in names:
        dst = rel(INPUTS, n)
        if not os.path.exists(dst):
            with open(os.path.join(GO_TESTDATA, n), "rb") as f, open(dst, "wb") as g:
                g.write(f.read())


def load_rgb(path, background):
    """Pillow decode -> exif_transpose -> RGB with alpha composited."""
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, tuple(background))
        bg.paste(im, mask=im.getchannel("A"))
        return bg
    return im.convert("RGB")


def resize(im, g):
    filt = {"BILINEAR": Image.Resampling.BILINEAR, "BICUBIC": Image.Resampling.BICUBIC}[g["interp"]]
    W, H = g["width"], g["height"]
    if g["mode"] == "SQUASH":
        return im.resize((W, H), filt)
    if g["mode"] == "LETTERBOX":
        # Ultralytics' LetterBox (center=True, scaleup=True) with Pillow's
        # resampling: Python's round() rounds half to even.
        w, h = im.size
        r = min(W / w, H / h)
        nw = min(max(int(round(w * r)), 1), W)
        nh = min(max(int(round(h * r)), 1), H)
        canvas = Image.new("RGB", (W, H), tuple(g.get("pad", [114, 114, 114])))
        canvas.paste(im.resize((nw, nh), filt), ((W - nw) // 2, (H - nh) // 2))
        return canvas
    # torchvision.transforms.Resize(S) + CenterCrop((H, W)) on a PIL image.
    s = g["shorter"]
    w, h = im.size
    if w <= h:
        nw, nh = s, int(s * h / w)
    else:
        nw, nh = int(s * w / h), s
    im = im.resize((nw, nh), filt)
    top = int(round((nh - H) / 2.0))
    left = int(round((nw - W) / 2.0))
    return im.crop((left, top, left + W, top + H))


def pixels(path, g):
    im = load_rgb(path, g.get("background", [255, 255, 255]))
    a = np.asarray(resize(im, g), dtype=np.uint8)
    if g.get("order", "RGB") == "BGR":
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def tensor(u8, spec):
    x = u8.astype(np.float32) * np.float32(spec["scale"])
    x = (x - np.array(spec["mean"], dtype=np.float32)) / np.array(spec["std"], dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1).astype("<f4"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", action="store_true", help="regenerate testdata/golden/inputs")
    args = ap.parse_args()
    os.chdir(ROOT)
    make_inputs(args.inputs)
    go_testdata_copies()

    images = [os.path.join(IMAGES, n) for n in sorted(os.listdir(IMAGES))
              if n.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"))
              ]
    images += [os.path.join(IMAGES, "orientation", n) for n in sorted(os.listdir(os.path.join(IMAGES, "orientation")))
               if n.endswith(".jpg")]
    images += [os.path.join(INPUTS, n) for n in sorted(os.listdir(INPUTS))]

    cases, tensors = [], []
    pix = io.BytesIO()
    ten = io.BytesIO()
    for path in images:
        name = os.path.basename(path)
        geoms = list(SMALL_GEOMETRIES)
        if name in PHOTOS or name.startswith("big-"):
            geoms.append("squash224-bicubic")
        if name in CROP224:
            geoms.append("crop256-224-bicubic")
        if path.startswith(INPUTS):
            geoms.append("letterbox150x130-bilinear")
        for gname in geoms:
            u8 = pixels(path, GEOMETRIES[gname])
            cases.append(dict(image=path, geometry=gname, offset=pix.tell(), shape=list(u8.shape)))
            pix.write(u8.tobytes())
        for sname, spec in SPECS.items():
            if sname == "resnet50" and name not in ("chelsea.png", "photo-500x375.jpg"):
                continue
            if sname == "colors" and not (name in PHOTOS or name.endswith(("red.jpg", "red-alpha.png"))):
                continue
            if sname == "squares" and name not in SQUARES:
                continue
            t = tensor(pixels(path, GEOMETRIES[spec["geometry"]]), spec)
            tensors.append(dict(image=path, spec=sname, offset=ten.tell(), shape=list(t.shape)))
            ten.write(t.tobytes())

    with gzip.GzipFile(os.path.join(GOLDEN, "pixels.bin.gz"), "wb", mtime=0) as f:
        f.write(pix.getvalue())
    with gzip.GzipFile(os.path.join(GOLDEN, "tensors.bin.gz"), "wb", mtime=0) as f:
        f.write(ten.getvalue())
    index = dict(
        generator="scripts/golden/make_golden.py",
        pillow=PIL.__version__,
        numpy=np.__version__,
        geometries=GEOMETRIES,
        specs=SPECS,
        cases=cases,
        tensors=tensors,
    )
    with open(os.path.join(GOLDEN, "index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(cases)} pixel cases, {len(tensors)} tensors, Pillow {PIL.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
