"""Face finding: OpenCV's Haar cascade against the same cascade run with numpy
(ferx/data/haar.py, what prediction uses where OpenCV is not installed).

    python bench/bench_detect.py [--rounds 3] [--sizes 320x240 640x480 1280x720]

Each photo is blurred noise with one drawn face pasted in (half the height); both detectors
run with ferx-predict's settings (scale 1.1, 5 neighbours, minimum side a tenth of the
image's), alternately round by round, OpenCV on one thread (ferx-predict leaves OpenCV its
default threads, so there it may be faster still). Prints the median milliseconds
per photo of each and whether their boxes agree to 2 pixels.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
from PIL import Image, ImageFilter

from ferx.cpu import describe_cpu
from ferx.data import haar
from ferx.data.synthetic import make_synthetic_fer


def photo(width: int, height: int, face: np.ndarray) -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 256, (height, width), dtype=np.uint8)
    canvas = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3))
    side = height // 2
    drawn = Image.fromarray(face).resize((side, side), Image.Resampling.BICUBIC)
    canvas.paste(drawn.filter(ImageFilter.GaussianBlur(2)), (width // 3, height // 5))
    return np.asarray(canvas)


def milliseconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    print(describe_cpu())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=["320x240", "640x480", "1280x720"])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    haar.load_cascade()
    face = make_synthetic_fer(40, seed=0).pixels[3]  # one the cascade finds (tests/test_haar.py)
    print(f"OpenCV {cv2.__version__}, one thread; numpy {np.__version__}")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        gray = photo(width, height, face)
        low = max(24, min(gray.shape) // 10)

        def opencv(gray=gray, low=low):
            return cascade.detectMultiScale(gray, 1.1, 5, minSize=(low, low))

        def ours(gray=gray, low=low):
            return haar.detect(gray, 1.1, 5, low)

        found = {"opencv": [], "numpy": []}
        for round_ in range(args.rounds):
            order = [("opencv", opencv), ("numpy", ours)]
            for name, call in order if round_ % 2 == 0 else order[::-1]:
                found[name].append(milliseconds(call, args.repeats))
        theirs = sorted(tuple(int(v) for v in b) for b in opencv())
        mine = sorted(ours())
        agree = len(theirs) == len(mine) and all(
            max(abs(a - b) for a, b in zip(x, y, strict=True)) <= 2
            for x, y in zip(theirs, mine, strict=True)
        )
        cv_ms, np_ms = statistics.median(found["opencv"]), statistics.median(found["numpy"])
        print(
            f"{size}: OpenCV {cv_ms:.1f} ms, numpy {np_ms:.1f} ms ({np_ms / cv_ms:.1f}x); "
            f"{len(mine)} face(s), boxes {'agree' if agree else 'DIFFER'} to 2 px"
        )


if __name__ == "__main__":
    main()
