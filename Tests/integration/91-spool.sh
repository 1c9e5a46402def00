#!/usr/bin/env bash
# The reject crop spool end to end, on the belt-simulator pipeline of 90-pipeline.sh (scene with
# known beans, colour encoder, store of labelled vectors):
#  1. one pass: every rejected bean of the stream has its JPEG where the event's `crop` says,
#     decodable, the crop size the encoder takes, dark like the defect; the accepted sample is the
#     configured fraction; no temporary file left; status `spool` agrees with the directory;
#  2. the cap holds while the belt runs: a spool pre-filled over the cap is cut down at start, the
#     oldest files go first, and the directory never exceeds the cap by more than one file;
#  3. an unwritable spool directory is reported (journald once, status `failing`, errors counted)
#     while decisions continue, and writing resumes (logged once) when the directory is fixed.
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
. "$ROOT/Tests/service-harness/pipeline-env.sh" numpy onnx onnxruntime cv2
exec "$PY" - "$ROOT" <<'PYEOF'
import json, os, sys, time
import cv2
sys.path.insert(0, os.path.join(sys.argv[1], "Tests/service-harness"))
from harness import *
from belt_pipeline import *

ERROR_MESSAGE = "spool cannot write crops"
RECOVERED_MESSAGE = "spool writes crops again"

def files_under(root, hidden=False):
    """{relative path: size} of the JPEGs (and with hidden=True the temporaries too) under root."""
    out = {}
    for base, _, names in os.walk(root):
        for name in names:
            if name.endswith(".jpg") or (hidden and name.endswith(".tmp")):
                path = os.path.join(base, name)
                try:
                    out[os.path.relpath(path, root)] = os.path.getsize(path)
                except FileNotFoundError:
                    pass  # evicted between listing and stat
    return out

def wait_pass_end(daemon, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = status(daemon)
        if s["cameras"][0]["state"] == "ended" and s["queues"] and all(q["depth"] == 0 for q in s["queues"]) \
                and s["spool"]["queue"]["depth"] == 0:
            return s
        time.sleep(0.3)
    fail("the pass did not end: %s" % json.dumps(status(daemon)))

with Journald():
    with TempDir() as d:
        model = os.path.join(d, "encoder.onnx")
        encoder(model)
        store, info = labelled_store(d, model)
        photo = os.path.join(d, "scene.png")
        beans, defects = scene(photo, rows=22)
        accepted = beans - defects
        print("scene: %d beans, %d defects" % (beans, defects))

        # ---------------------------------------------------- 1. one pass
        spool = os.path.join(d, "spool")   # the default: spool in the state directory
        fraction = 0.25
        cfg = config(d, model, store, photo, camera_extra="fps = 30\nbelt_speed = 300\nloop = false",
                     spool_extra="[spool]\naccepted_sample = %s\njpeg_quality = 95" % fraction)
        with Daemon(cfg) as daemon:
            wait_ready(daemon)
            stream = Consumer(os.path.join(d, "rejects.sock"))
            stream.start()
            s = wait_pass_end(daemon)
            time.sleep(0.5)  # status is published every 250 ms
            s = status(daemon)
            check(s["beans_total"] == beans and s["rejects_total"] == defects,
                  "the pass decided every bean (%s) and rejected every defect (%s)" % (s["beans_total"], s["rejects_total"]))
            sp = s["spool"]
            print("status spool:", json.dumps(sp))
            on_disk = files_under(spool)
            check(sp["enabled"] is True and sp["state"] == "ok" and sp["directory"] == spool, "spool ok in the state directory")
            check(sp["files"] == len(on_disk) and sp["bytes"] == sum(on_disk.values()),
                  "status files/bytes match the directory (%s/%s vs %d/%d)" % (sp["files"], sp["bytes"], len(on_disk), sum(on_disk.values())))
            check(sp["written"] == len(on_disk) and sp["dropped"] == 0 and sp["errors"] == 0 and sp["evicted"] == 0,
                  "every kept crop written, none dropped, no error")
            check(sp["max_bytes"] == 256 << 20 and sp["accepted_sample"] == fraction, "defaults and configured fraction shown")
            r = subprocess.run([BEANCTL, "status", "--socket", daemon.control], capture_output=True, text=True, timeout=30)
            check(r.returncode == 0 and any(l.startswith("Spool ") and ": ok, %d files" % len(on_disk) in l for l in r.stdout.splitlines()),
                  "beanctl status shows the spool: %s" % [l for l in r.stdout.splitlines() if l.startswith("Spool")])
            code, _ = daemon.stop()
            check(code == 0, "exit 0")
            stream.join(timeout=10)
        events = stream.events
        check(len(events) == defects, "stream carries every reject (%d of %d)" % (len(events), defects))
        on_disk = files_under(spool)
        for e in events:
            crop = e.get("crop")
            if not (crop and crop.startswith("reject/Black/") and crop in on_disk):
                fail("rejected bean %s has no spooled crop (event crop %r)" % (e["bean_id"], crop))
            name = os.path.basename(crop)
            if "_%s_%d_" % (e["camera"], e["bean_id"]) not in name:
                fail("crop name %s does not name camera and bean id %s/%s" % (name, e["camera"], e["bean_id"]))
            img = cv2.imread(os.path.join(spool, crop), cv2.IMREAD_COLOR)
            if img is None or img.shape != (CROP, CROP, 3):
                fail("%s does not decode to a %dx%d colour image: %s" % (crop, CROP, CROP, None if img is None else img.shape))
            centre = img[CROP // 2 - 4:CROP // 2 + 4, CROP // 2 - 3:CROP // 2 + 3].reshape(-1, 3).mean(axis=0)[::-1]  # BGR → RGB
            if max(abs(centre - np.array(DEFECT))) > 25:
                fail("%s is not the defect bean the encoder saw: centre colour %s" % (crop, centre))
        check(True, "every rejected bean of the stream has its decodable %dx%d JPEG, named after it, showing the defect" % (CROP, CROP))
        rejected_files = [p for p in on_disk if p.startswith("reject/")]
        check(len(rejected_files) == defects, "exactly the rejects under reject/ (%d)" % len(rejected_files))
        accepted_files = [p for p in on_disk if p.startswith("accept/")]
        check(all(p.startswith("accept/Normal/") for p in accepted_files), "accepted crops are filed under their label")
        check(abs(len(accepted_files) - accepted * fraction) <= 1,
              "accepted sample %d of %d near the configured %.2f (%.1f)" % (len(accepted_files), accepted, fraction, accepted * fraction))
        for p in accepted_files:
            img = cv2.imread(os.path.join(spool, p), cv2.IMREAD_COLOR)
            centre = img[CROP // 2 - 4:CROP // 2 + 4, CROP // 2 - 3:CROP // 2 + 3].reshape(-1, 3).mean(axis=0)[::-1]
            if img.shape != (CROP, CROP, 3) or max(abs(centre - np.array(GOOD))) > 25:
                fail("%s is not a good bean's crop: %s" % (p, centre))
        check(not files_under(spool, hidden=True).keys() - on_disk.keys(), "no temporary file left behind")

        # ---------------------------------------------------- 2. the cap holds while the belt runs
        cap = 1 << 20
        old_dir = os.path.join(spool, "reject", "Old")
        os.makedirs(old_dir)
        junk = bytes(range(256)) * 200  # 51,200 bytes
        for index in range(30):          # 1.5 MB of older files: 10 must go at start
            path = os.path.join(old_dir, "old%02d.jpg" % index)
            with open(path, "wb") as f:
                f.write(junk)
            os.utime(path, (1_000_000 + index, 1_000_000 + index))
        with open(os.path.join(old_dir, ".crashed.jpg.tmp"), "wb") as f:
            f.write(b"half")
        before = files_under(spool)
        cfg = config(d, model, store, photo, camera_extra="fps = 60\nbelt_speed = 1200\nloop = true",
                     spool_extra="[spool]\naccepted_sample = 1\nmax_bytes = %d" % cap)
        with Daemon(cfg) as daemon:
            wait_ready(daemon)
            # The pre-filled directory is over the cap until the spool thread's first scan.
            deadline = time.monotonic() + 10
            while (status(daemon)["spool"] or {}).get("files") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            check(status(daemon)["spool"]["evicted"] >= 10, "the scan at start cut the pre-filled spool down to the cap")
            largest, polls, worst = max(before.values()), 0, 0
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                sizes = files_under(spool, hidden=True)
                total = sum(sizes.values())
                largest = max([largest] + list(sizes.values()))
                worst = max(worst, total)
                if total > cap + largest:
                    fail("spool at %d bytes, above the cap %d by more than one file (%d)" % (total, cap, largest))
                polls += 1
                time.sleep(0.05)
            s = status(daemon)
            sp = s["spool"]
            print("status spool under the cap:", json.dumps(sp))
            check(polls > 50, "the directory was measured %d times while the belt ran; at most %d bytes" % (polls, worst))
            check(sp["bytes"] <= cap and sp["max_bytes"] == cap and sp["state"] == "ok", "status: under the cap")
            check(sp["written"] > 100 and sp["evicted"] > 10, "crops kept flowing, old ones evicted (%d written, %d evicted)"
                  % (sp["written"], sp["evicted"]))
            code, _ = daemon.stop()
            check(code == 0, "exit 0")
        after = files_under(spool)
        check(sum(after.values()) <= cap, "under the cap after the stop: %d" % sum(after.values()))
        kept_old = sorted(p for p in after if p.startswith("reject/Old/"))
        all_old = sorted(p for p in before if p.startswith("reject/Old/"))
        check(kept_old == all_old[len(all_old) - len(kept_old):], "oldest files evicted first: %d of %d old files left" % (len(kept_old), len(all_old)))
        first_run = [p for p in before if not p.startswith("reject/Old/")]
        check(kept_old and all(p in after for p in first_run),
              "the first run's files, newer than the old ones, are still there while old ones are")
        check(not os.path.exists(os.path.join(old_dir, ".crashed.jpg.tmp")), "a crash's temporary file is removed at start")

        # ---------------------------------------------------- 3. unwritable directory
        blocker = os.path.join(d, "blocker")
        with open(blocker, "w") as f:
            f.write("a file where the spool's parent directory should be (fails for root too)\n")
        bad_spool = os.path.join(blocker, "spool")
        cfg = config(d, model, store, photo, camera_extra="fps = 30\nbelt_speed = 600\nloop = true",
                     spool_extra='[spool]\ndirectory = "%s"\naccepted_sample = 0.5' % bad_spool)
        with Daemon(cfg) as daemon:
            wait_ready(daemon)
            time.sleep(3)
            first = status(daemon)
            time.sleep(3)
            s = status(daemon)
            sp = s["spool"]
            print("status spool unwritable:", json.dumps(sp))
            check(sp["state"].startswith("failing: ") and blocker in sp["state"] and sp["last_error"] and "Not a directory" in sp["last_error"],
                  "status names the failing directory and reason: %s" % sp["state"])
            check(sp["errors"] > first["spool"]["errors"] > 0 and sp["written"] == 0, "lost crops counted (%d, then %d)"
                  % (first["spool"]["errors"], sp["errors"]))
            check(s["beans_total"] > first["beans_total"] > 0 and s["rejects_total"] > first["rejects_total"]
                  and s["unscored_total"] == 0 and s["scoring"] == "ok", "decisions continue, scored, while the spool fails")
            os.unlink(blocker)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not files_under(bad_spool):
                time.sleep(0.2)
            time.sleep(1)
            s = status(daemon)
            check(files_under(bad_spool) and s["spool"]["state"] == "ok" and s["spool"]["written"] > 0,
                  "writing resumes once the directory can be created: %s" % s["spool"]["state"])
            code, _ = daemon.stop()
            check(code == 0, "exit 0")
            pid = daemon.process.pid
        entries = journal_entries(pid, 1)
        failing = [e for e in entries if e.get("MESSAGE", "").startswith(ERROR_MESSAGE)]
        recovered = [e for e in entries if e.get("MESSAGE", "").startswith(RECOVERED_MESSAGE)]
        check(len(failing) == 1 and "Not a directory" in failing[0].get("ERROR", "") and failing[0].get("PRIORITY") == "3",
              "the failure is logged once, at error priority, with the reason: %s" % [e.get("ERROR") for e in failing])
        check(len(recovered) == 1 and int(recovered[0].get("SPOOL_FAILURES", "0")) >= 1,
              "the recovery is logged once: %s" % [e.get("MESSAGE") for e in recovered])
print("PASS")
PYEOF
