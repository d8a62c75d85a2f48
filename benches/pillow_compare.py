#!/usr/bin/env python3
"""Side-by-side: mlops corruption (Rust) against the same algorithms written with Pillow.

Same images, same parameter laws, one thread each for the in-memory numbers; the folder run
compares the Rust driver on all cores with a sequential Pillow script (the original's way).
Prints a Markdown table and writes it with the raw numbers to target/bench-results/.

    make bench-pillow        # builds the inputs and the Rust timing program, then runs this
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import PIL
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "target" / "bench-data"
RESULTS = ROOT / "target" / "bench-results"
TIMING = ROOT / "target" / "release" / "examples" / "corrupt_timing"
KINDS = ["random_boxes", "mosaic", "random_line", "mixed"]


def boxes(rng: random.Random, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """The original's box law: 5..=10 boxes of 100..=200 px, placed to fit."""
    out = []
    for _ in range(rng.randint(5, 10)):
        bw, bh = rng.randint(100, min(200, w)), rng.randint(100, min(200, h))
        x, y = rng.randint(0, w - bw), rng.randint(0, h - bh)
        out.append((x, y, bw, bh))
    return out


def random_boxes(img: Image.Image, rng: random.Random) -> None:
    draw = ImageDraw.Draw(img)
    for x, y, bw, bh in boxes(rng, *img.size):
        draw.rectangle([x, y, x + bw - 1, y + bh - 1], fill=(255, 255, 255))


def mosaic(img: Image.Image, rng: random.Random) -> None:
    for x, y, bw, bh in boxes(rng, *img.size):
        region = img.crop((x, y, x + bw, y + bh))
        small = region.resize((10, 10), Image.Resampling.NEAREST)
        img.paste(small.resize((bw, bh), Image.Resampling.NEAREST), (x, y))


def random_line(img: Image.Image, rng: random.Random) -> None:
    w, h = img.size
    width = rng.randint(50, 200)
    if rng.random() < 0.5:
        r = rng.randint(0, w)
        points = [(r, 0), (w - r, h)]
    else:
        r = rng.randint(0, h)
        points = [(0, r), (w, h - r)]
    ImageDraw.Draw(img).line(points, fill=(0, 0, 0), width=width)


def mixed(img: Image.Image, rng: random.Random) -> None:
    rng.choice([random_boxes, mosaic, random_line])(img, rng)


PILLOW = {"random_boxes": random_boxes, "mosaic": mosaic, "random_line": random_line, "mixed": mixed}


def time_in_memory(path: Path, kind: str, calls: int, repeats: int) -> float:
    """Median over repeats of the mean ms per call, corrupting one working copy in place."""
    image = Image.open(path).convert("RGB")
    image.load()
    fn = PILLOW[kind]
    rng = random.Random(1)
    samples = []
    work = image.copy()
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(calls):
            fn(work, rng)
        samples.append((time.perf_counter() - start) * 1e3 / calls)
    return statistics.median(samples[1:])


def pillow_folder(src: Path, dst: Path) -> int:
    """The original's sequential script: open, corrupt (mixed), save with the same name."""
    rng = random.Random(7)
    count = 0
    for path in sorted(src.iterdir()):
        if path.suffix.lower() not in {".png", ".jpg", ".jpeg", ".gif"}:
            continue
        img = Image.open(path).convert("RGB")
        mixed(img, rng)
        img.save(dst / path.name)
        count += 1
    return count


def pillow_codecs(src: Path) -> tuple:
    """Pillow's decode and JPEG encode (quality 75) per file, ms, median of 3 passes."""
    paths = sorted(p for p in src.iterdir() if p.suffix.lower() == ".jpg")
    data = [p.read_bytes() for p in paths]
    decode_ms, encode_ms = [], []
    for _ in range(3):
        start = time.perf_counter()
        images = []
        for b in data:
            img = Image.open(io.BytesIO(b))
            img.load()
            images.append(img)
        decode_ms.append((time.perf_counter() - start) * 1e3 / len(data))
        start = time.perf_counter()
        for img in images:
            img.save(io.BytesIO(), "JPEG", quality=75)
        encode_ms.append((time.perf_counter() - start) * 1e3 / len(data))
    return statistics.median(decode_ms), statistics.median(encode_ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    images = [DATA / "photo_512.png", DATA / "photo_1080.png"]
    folder = DATA / "jpegs"
    for p in [*images, folder, TIMING]:
        if not p.exists():
            sys.exit(f"{p} is missing: run `make bench-pillow` (it builds the inputs first)")

    def rust(threads: int) -> dict:
        cmd = [str(TIMING), "--calls", str(args.calls), "--repeats", str(args.repeats),
               "--folder", str(folder), "--threads", str(threads)]
        for img in images:
            cmd += ["--image", str(img)]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)

    rust_all = rust(args.threads)
    rust_one = rust(1)

    rows = []
    for img in images:
        size = "x".join(map(str, Image.open(img).size))
        for kind in KINDS:
            ours = rust_one["in_memory_ms_per_image"][size][kind]
            theirs = time_in_memory(img, kind, args.calls, args.repeats)
            rows.append((f"{kind} {size}", theirs, ours))

    runs = []
    count = 0
    for _ in range(3):
        dst = Path(tempfile.mkdtemp(prefix="pillow-folder-"))
        start = time.perf_counter()
        count = pillow_folder(folder, dst)
        runs.append(time.perf_counter() - start)
        shutil.rmtree(dst)
    pillow_seconds = statistics.median(runs)

    lines = [
        f"Pillow {PIL.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores; "
        f"median of {args.repeats} runs of {args.calls} calls (in memory), median of 3 runs (folder).",
        "",
        "| case | Pillow | mlops | Pillow / mlops |",
        "|---|---:|---:|---:|",
    ]
    for name, theirs, ours in rows:
        lines.append(f"| in memory, 1 thread: {name} | {theirs:.3f} ms | {ours:.3f} ms | {theirs / ours:.1f}x |")
    for label, result in [("1 thread", rust_one), (f"{rust_all['folder_threads']} threads", rust_all)]:
        ours = result["folder_seconds"]
        lines.append(
            f"| file to file, {count} JPEGs 640x480, mixed: Pillow sequential vs mlops {label} "
            f"| {pillow_seconds:.3f} s | {ours:.3f} s | {pillow_seconds / ours:.1f}x |"
        )
    pillow_decode, pillow_encode = pillow_codecs(folder)
    lines += [
        "",
        "| per 640x480 JPEG, one core | mlops | Pillow (libjpeg-turbo) |",
        "|---|---:|---:|",
        f"| decode | {rust_one['decode_ms_per_file']:.2f} ms | {pillow_decode:.2f} ms |",
        f"| encode, quality 75, 4:2:0 | {rust_one['encode_ms_per_file']:.2f} ms | {pillow_encode:.2f} ms |",
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pillow_compare.md").write_text(table + "\n")
    raw = {"rust_1_thread": rust_one, "rust_all_threads": rust_all,
           "pillow_in_memory_ms": {name: t for name, t, _ in rows}, "pillow_folder_seconds": pillow_seconds}
    (RESULTS / "pillow_compare.json").write_text(json.dumps(raw, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
