"""Peer for `beanctl bench spool`: the straightforward crop writer in Python with OpenCV — encode
each crop as JPEG, write it under a temporary name, fdatasync, rename; delete the oldest files to
stay under the same cap. Same crop size, quality, count and cap as the beand run. Prints JSON."""
import json, os, sys, tempfile, time
import numpy as np
import cv2

def bean_crop(index, size):
    rng = np.random.default_rng(index)
    img = np.full((size, size, 3), 128, np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2
    inside = ((xx - c) / (size * 0.3)) ** 2 + ((yy - c) / (size * 0.45)) ** 2 <= 1
    grain = rng.integers(0, 24, (size, size))
    img[..., 0] = np.where(inside, 100 + grain, 128)
    img[..., 1] = np.where(inside, 150 + grain, 128)
    img[..., 2] = np.where(inside, 80 + grain // 2, 128)
    return img[..., ::-1].copy()  # OpenCV wants BGR

def main():
    crops, size, quality, cap = (int(a) for a in sys.argv[1:5])
    pool = [bean_crop(i, size) for i in range(64)]
    root = tempfile.mkdtemp(prefix="spool-peer-", dir="/tmp")
    folder = os.path.join(root, "reject", "Black")
    os.makedirs(folder)
    files, total, evicted = [], 0, 0
    t0 = time.perf_counter()
    for i in range(crops):
        ok, buf = cv2.imencode(".jpg", pool[i % 64], [cv2.IMWRITE_JPEG_QUALITY, quality])
        data = buf.tobytes()
        while files and total + len(data) > cap:
            path, n = files.pop(0)
            os.unlink(path)
            total -= n
            evicted += 1
        final = os.path.join(folder, "%08d.jpg" % i)
        tmp = os.path.join(folder, ".%08d.jpg.tmp" % i)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.write(fd, data)
        os.fdatasync(fd)
        os.close(fd)
        os.rename(tmp, final)
        files.append((final, len(data)))
        total += len(data)
    seconds = time.perf_counter() - t0
    for path, _ in files:
        os.unlink(path)
    os.removedirs(folder)
    print(json.dumps({"write_crops_per_s": crops / seconds, "write_us": seconds / crops * 1e6, "evicted": evicted}))

main()
