"""OpenCV peer for bench-segment: the same frame through the equivalent classic pipeline
(colour distance to the belt colour, threshold, 3x3 opening, 8-connected components with stats),
one thread, timed over the same number of frames. Prints one JSON object.

The distance is the sum of absolute channel differences (saturating uint8, OpenCV's fast path),
thresholded at threshold x sqrt(3): close to, and cheaper than, the Euclidean distance beand uses.
No touching-bean split and no tracking: the peer does less work than beand per frame."""
import json
import sys
import time

import cv2
import numpy as np


def main():
    path, frames = sys.argv[1], int(sys.argv[2])
    belt = np.array([int(v) for v in sys.argv[3].split(",")], dtype=np.int16)  # R,G,B
    threshold = float(sys.argv[4])
    cv2.setNumThreads(1)
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        sys.exit(f"opencv peer: cannot read {path}")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    kernel = np.ones((3, 3), np.uint8)
    belt_image = np.empty_like(rgb)
    belt_image[:] = belt.astype(np.uint8)
    weights = np.ones((1, 3), np.float32)
    level = threshold * 3 ** 0.5

    def step():
        cv2.absdiff(rgb, belt_image, dst=belt_scratch)
        total = cv2.transform(belt_scratch, weights)
        _, mask = cv2.threshold(total, level, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        return int((stats[1:, cv2.CC_STAT_AREA] >= 150).sum())

    belt_scratch = np.empty_like(rgb)
    for _ in range(20):
        found = step()
    start = time.perf_counter()
    for _ in range(frames):
        found = step()
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": f"opencv {cv2.__version__}", "fps": round(frames / seconds, 1), "beans": found}))


if __name__ == "__main__":
    main()
