#!/usr/bin/env bash
# The inspection pipeline end to end: a belt-simulator camera over a synthetic scene with known
# beans (pale green = good, near-black = defect), a small generated ONNX encoder, a store built by
# embedding synthetic crops with it and published with `beanctl store add`.
#  1. decisions (status counters), reject-stream events and journald entries agree one to one: same
#     bean ids, no duplicates, none missing; exactly the defect beans are rejected;
#  2. a reject-stream consumer that disconnects mid-stream resumes with resume_after and misses
#     no sequence number;
#  3. hot reload under load: new store generations published while the belt runs; later decisions
#     carry the new label and no frame is dropped;
#  4. status figures are filled and plausible; SIGTERM drains and exits 0;
#  5. overload (fps far above what can be scored before the eject time, tiny queue): fail-safe
#     counters rise, ping is answered, RSS stays bounded.
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
. "$ROOT/Tests/service-harness/pipeline-env.sh" numpy onnx onnxruntime
exec "$PY" - "$ROOT" <<'PYEOF'
import json, os, re, signal, socket, struct, subprocess, sys, threading, time, zlib
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
sys.path.insert(0, os.path.join(sys.argv[1], "Tests/service-harness"))
from harness import *

ROOT = sys.argv[1]
# Scene, encoder, store, config, reject-stream consumer (shared with 91-spool.sh).
from belt_pipeline import *

# ---------------------------------------------------------------- journald (harness.Journald, as test 13)
source = open(os.path.join(ROOT, "Sources/BeanService/Logging/BeandMessageID.swift")).read()
IDS = dict(re.findall(r'case (\w+) = "([0-9a-f]{32})"', source))

def wait_for_pass(daemon, timeout=90):
    """Until the pass ends: the camera reports `ended` and every bean is decided."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = status(daemon)
        if s["cameras"][0]["state"] == "ended" and s["queues"] and all(q["depth"] == 0 for q in s["queues"]):
            break
        time.sleep(0.3)
    time.sleep(0.5)

def journal(pid, message_id, want, timeout=15):
    return journal_entries(pid, want, message_id=message_id, timeout=timeout)

def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0

with Journald():
    with TempDir() as d:
        model = os.path.join(d, "encoder.onnx")
        encoder(model)
        store, info = labelled_store(d, model)
        photo = os.path.join(d, "scene.png")
        beans, defects = scene(photo, rows=22)
        print("scene: %d beans, %d defects" % (beans, defects))

        # ---------------------------------------------------- run 0: no encoder model yet
        late_model = os.path.join(d, "late", "encoder.onnx")
        # Two cameras at once over the same scene.
        cfg = config(d, late_model, store, photo, camera_extra=f"""fps = 30
belt_speed = 600
loop = true
[[camera]]
name = "cam1"
source = "belt:{photo}"
width = 320
height = 240
min_area = 300
fps = 20
belt_speed = 400
""")
        with Daemon(cfg) as daemon:
            wait_ready(daemon)
            time.sleep(2.5)
            s = status(daemon)
            check(s["scoring"].startswith("fail-safe: encoder model " + late_model), "missing model named in status: %s" % s["scoring"])
            check(s["unscored_total"] > 0 and s["unscored_total"] == s["beans_total"], "every bean decided by the fail-safe: %s" % s)
            check(s["encoder"]["fingerprint"] is None and s["store"]["generation"] is None, "no invented encoder/store figures")
            r = request(daemon.control, {"command": "reload"}, timeout=30)
            check(not r["ok"] and late_model in r["error"], "reload without the model fails naming it: %s" % r)
            os.makedirs(os.path.dirname(late_model))
            subprocess.run(["cp", model, late_model], check=True)
            r = request(daemon.control, {"command": "reload"}, timeout=30)
            check(r["ok"] and r["result"]["generation"] == 1, "reload picks up the model and the store: %s" % r)
            time.sleep(0.6)  # status is published every 250 ms
            unscored = status(daemon)["unscored_total"]
            time.sleep(2.0)
            s = status(daemon)
            check(s["scoring"] == "ok" and s["encoder"]["fingerprint"] == info["fingerprint"], "scoring after reload")
            check(s["beans_total"] > unscored and s["unscored_total"] == unscored, "beans scored after the reload: %s" % {k: s[k] for k in ("beans_total", "unscored_total")})
            check([c["name"] for c in s["cameras"]] == ["cam0", "cam1"] and all(c["state"] == "streaming" and c["frames"] > 0 for c in s["cameras"]),
                  "both cameras stream: %s" % s["cameras"])
            # Every pipeline thread carries its name in the kernel; the encoders yield to the
            # cameras (nice +2) and the spool to everything (nice +10).
            threads = {}
            for tid in os.listdir("/proc/%d/task" % daemon.process.pid):
                try:
                    comm = open("/proc/%d/task/%s/comm" % (daemon.process.pid, tid)).read().strip()
                    nice = int(open("/proc/%d/task/%s/stat" % (daemon.process.pid, tid)).read().rsplit(")", 1)[1].split()[16])
                except (OSError, ValueError, IndexError):
                    continue
                threads[comm] = nice
            base = threads.get("vision/cam0")
            want = {"capture/cam0", "capture/cam1", "vision/cam0", "vision/cam1", "scorer-0", "encoder-0",
                    "decide", "spool", "status", "store-watch"}
            check(want <= set(threads), "thread names in /proc: missing %s of %s" % (sorted(want - set(threads)), sorted(threads)))
            encoders = [n for c, n in threads.items() if c.startswith("encoder-")]
            check(base is not None and threads.get("vision/cam1") == base and encoders and all(n == base + 2 for n in encoders)
                  and threads.get("spool") == min(19, base + 10),
                  "nice: vision at the process's, encoders +2, spool +10: %s" % threads)
            code, _ = daemon.stop()
            check(code == 0, "exit 0")
        check(not os.path.exists(os.path.join(d, "thresholds")), "no thresholds file before any set-threshold")

        # ---------------------------------------------------- run 1: one pass, hot reload midway
        cfg = config(d, model, store, photo, camera_extra="fps = 30\nbelt_speed = 300\nloop = false\nejector_distance_m = 0.4")
        with Daemon(cfg) as daemon:
            wait_ready(daemon)
            reference = Consumer(os.path.join(d, "rejects.sock"))
            reference.start()
            interrupted = Consumer(os.path.join(d, "rejects.sock"), limit=3)
            interrupted.start()
            interrupted.join(timeout=60)
            check(len(interrupted.events) == 3, "interrupted consumer read 3 events before disconnecting")
            last_seen = interrupted.events[-1]["seq"]
            resumed = Consumer(os.path.join(d, "rejects.sock"), resume_after=last_seen)
            resumed.start()
            # Hot reload under load: defects are relabelled Insect in two generations.
            time.sleep(1.0)
            s = status(daemon)
            frames_before_swap = s["cameras"][0]["frames"]
            drops_before_swap = s["cameras"][0]["drops"]
            save_npy(os.path.join(d, "v2.npy"), embed(model, crops(DEFECT, 12)))
            with open(os.path.join(d, "v2.labels"), "w") as f:
                f.write("Insect\n" * 12)
            beanctl("store", "add", "--store", store, "--vectors", os.path.join(d, "v2.npy"), "--labels",
                    os.path.join(d, "v2.labels"))
            beanctl("store", "remove", "--store", store, "--label", "Black")
            swapped_at = time.monotonic()
            wait_for_pass(daemon)
            s = status(daemon)
            print("status after the pass:", json.dumps(s))
            check(s["cameras"][0]["state"] == "ended", "camera ended after one pass (state %s)" % s["cameras"][0]["state"])
            check(s["scoring"] == "ok", "scoring ok: %s" % s["scoring"])
            check(s["beans_total"] == beans, "every bean in the scene decided once: %s of %d" % (s["beans_total"], beans))
            check(s["rejects_total"] == defects, "every defect rejected: %s of %d" % (s["rejects_total"], defects))
            check(s["unscored_total"] == 0 and s["lost_total"] == 0, "no bean unscored or lost")
            # Drops during start-up (background learning) are not the reload's; none may follow the swap.
            check(s["cameras"][0]["drops"] == drops_before_swap,
                  "no frame dropped after the store swaps: %s before, %s after" % (drops_before_swap, s["cameras"][0]["drops"]))
            check(s["cameras"][0]["frames"] > frames_before_swap, "frames kept flowing through the swap")
            check(s["store"]["generation"] == 3 and s["store"]["labels"] is not None and "Insect" in s["store"]["labels"],
                  "status shows store generation 3 with label Insect: %s" % s["store"])
            check(s["store"]["vectors"] == 24 and s["store"]["dim"] == 4, "store size and dimension shown")
            check(s["encoder"]["fingerprint"] == info["fingerprint"] and s["encoder"]["input_size"] == [CROP, CROP],
                  "encoder fingerprint and input size shown")
            lat = s["latency_ms"]
            check(lat["p50"] is not None and lat["p99"] is not None and 0 < lat["p50"] <= lat["p99"] < 1000,
                  "latency p50/p99 plausible: %s" % lat)
            cam = s["cameras"][0]
            check(isinstance(cam.get("tracks_lost_before_line"), int) and isinstance(cam.get("tracks_born_past_line"), int),
                  "tracker counters shown per camera: %s" % cam)
            stages = lat.get("stages") or {}
            check(sorted(stages) == ["decision", "scoring", "vision"]
                  and all(v["p50"] is not None and 0 <= v["p50"] <= v["p99"] <= lat["p99"] * 1.04 for v in stages.values())
                  and sum(v["p50"] for v in stages.values()) <= lat["p99"] * 1.04,
                  "latency stages vision/scoring/decision, each within the total: %s" % lat)
            check(s["rejects_by_label"] and sum(s["rejects_by_label"].values()) == defects, "rejects by label add up")
            check(s["beans_per_s"] is not None and s["beans_per_s"] >= 0, "beans/s shown")
            check(s["policy"]["mode"] == "score" and s["policy"]["k"] == 3 and s["policy"]["reject_share"] == 0.5
                  and s["policy"]["label_reject_shares"] == {} and s["policy"]["reported_neighbors"] == 8,
                  "status shows the policy in force (the default mode, the config's k): %s" % s["policy"])
            check(s["cameras"][0]["fps"] is None or s["cameras"][0]["fps"] >= 0, "fps shown")
            # set-threshold (root is admin): validated, persisted, answered with old and new value.
            r = request(daemon.control, {"command": "set-threshold", "key": "label:Insect", "value": 0.9})
            check(r["ok"] and {k: r["result"][k] for k in ("key", "old", "new")} == {"key": "label:Insect", "old": None, "new": 0.9},
                  "set-threshold label:Insect 0.9: %s" % r)
            # Score mode (the default): a label threshold above the default share changes nothing,
            # and the answer says so.
            check("changes nothing" in (r["result"].get("note") or ""), "the answer notes a label threshold without effect: %s" % r)
            check(status(daemon)["policy"]["label_reject_shares"] == {"Insect": 0.9}, "status shows the new label threshold")
            out = beanctl("--socket", daemon.control, "set", "threshold", "label:Insect", "0.95")
            check("threshold label:Insect changed from 0.9 to 0.95" in out and "\nnote: in score mode" in out,
                  "beanctl set threshold prints the change and the daemon's note: %r" % out)
            # A reload logs the rule in force again, and warns about the label threshold that
            # cannot act in score mode (checked in the journal below).
            r = request(daemon.control, {"command": "reload"}, timeout=30)
            check(r["ok"], "reload with a thresholds file: %s" % r)
            check("label:Insect" in open(os.path.join(d, "thresholds")).read(), "threshold persisted in the state directory")
            r = request(daemon.control, {"command": "set-threshold", "key": "colour", "value": 0.5})
            check(not r["ok"] and "unknown threshold key 'colour'" in r["error"], "bad key refused: %s" % r)
            r = request(daemon.control, {"command": "set-threshold", "key": "default", "value": 1.5})
            check(not r["ok"] and "(0, 1]" in r["error"], "out-of-range value refused: %s" % r)
            r = request(daemon.control, {"command": "set-threshold", "key": "default"})
            check(not r["ok"] and "value" in r["error"], "missing value refused: %s" % r)
            code, took = daemon.stop()
            check(code == 0, "SIGTERM → exit 0 (took %.1fs): %s" % (took, daemon.log()[-2000:]))
            reference.join(timeout=10)
            resumed.join(timeout=10)
            pid = daemon.process.pid

        stream = reference.events
        ids = [(e["camera"], e["bean_id"]) for e in stream]
        check(len(ids) == len(set(ids)), "no duplicate bean in the stream")
        check(len(stream) == defects, "stream carries every reject: %d of %d" % (len(stream), defects))
        check(all(e["label"] in ("Black", "Insect") for e in stream), "only defect labels rejected")
        check(all(len(e["neighbors"]) == 3 for e in stream), "every event lists the k = 3 neighbours (fewer than reported_neighbors)")
        check(all(e["reason"] == "score" for e in stream), "the default mode decides: reason score")
        seqs = [e["seq"] for e in stream]
        check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "sequence numbers contiguous")
        labels = [e["label"] for e in stream]
        check(labels[0] == "Black" and labels[-1] == "Insect", "decisions switch to the new label: %s" % labels)
        check("Black" not in labels[labels.index("Insect"):][3:], "no old label after the swap settled: %s" % labels)
        got = [e["seq"] for e in interrupted.events] + [e["seq"] for e in resumed.events]
        check(not resumed.gaps and got == seqs, "resumed consumer: no missing sequence number (%s vs %s)" % (got, seqs))

        entries = journal(pid, IDS["reject"], defects)
        jids = [(e.get("CAMERA"), int(e.get("BEAN_ID", "-1"))) for e in entries]
        check(len(jids) == len(set(jids)), "no duplicate journald reject entry")
        check(set(jids) == set(ids), "journald and stream name the same beans (%d vs %d)" % (len(jids), len(ids)))
        byid = {(e["camera"], e["bean_id"]): e for e in stream}
        for e in entries:
            ev = byid[(e["CAMERA"], int(e["BEAN_ID"]))]
            check(e["LABEL"] == ev["label"] and int(e["FRAME_SEQ"]) == ev["frame_seq"] and e.get("NEIGHBORS", "").startswith("["),
                  "journald entry matches its stream event (bean %s)" % e["BEAN_ID"])
            for field in ("LANE", "SCORE"):
                check(field in e, "journald entry has %s" % field)
        logged = [e.get("MESSAGE", "") for e in journal(pid, None, 1)]
        check(any(m == "deciding in score mode: a bean is rejected when its reject score over the 3 nearest reaches 0.5" for m in logged),
              "the rule in force is in the journal at start: %s" % [m for m in logged if m.startswith("deciding")])
        check(any(m.startswith("threshold label:Insect 0.95 does not act: in score mode") for m in logged),
              "a reload warns about the label threshold that cannot act: %s" % [m for m in logged if "does not act" in m])
        print("run 1: %d beans, %d rejects; stream, journald and status agree" % (beans, len(stream)))

        # ---------------------------------------------------- run 1b: vote mode, one pass
        # The same scene decided by the vote (one defect label's share): every defect is still
        # rejected and no good bean, events and journald carry reason "vote", and they list only
        # the nearest reported_neighbors of the k.
        os.remove(os.path.join(d, "thresholds"))  # run 1's set-threshold (label:Insect 0.9)
        cfg = config(d, model, store, photo, camera_extra="fps = 30\nbelt_speed = 300\nloop = false\nejector_distance_m = 0.4",
                     inspect_extra='mode = "vote"\nreported_neighbors = 2', k=3)
        with Daemon(cfg) as daemon:
            wait_ready(daemon)
            scored = Consumer(os.path.join(d, "rejects.sock"))
            scored.start()
            wait_for_pass(daemon)
            s = status(daemon)
            check(s["beans_total"] == beans and s["rejects_total"] == defects,
                  "vote mode: every bean decided, every defect rejected: %s of %d, %s of %d" % (s["beans_total"], beans, s["rejects_total"], defects))
            code, _ = daemon.stop()
            check(code == 0, "vote mode: exit 0")
            scored.join(timeout=10)
            pid = daemon.process.pid
        check(len(scored.events) == defects and all(e["reason"] == "vote" and e["label"] == "Insect" and 0.5 <= e["score"] <= 1
                                                    for e in scored.events),
              "vote mode: stream events have reason vote, the defect label and its vote share: %s" % scored.events[:2])
        check(all(len(e["neighbors"]) == 2 and e["neighbors"][0]["distance"] <= e["neighbors"][1]["distance"]
                  for e in scored.events),
              "vote mode: events list the 2 nearest of the 3 neighbours, nearest first: %s" % scored.events[:1])
        entries = journal(pid, IDS["reject"], defects)
        check(len(entries) == defects and all(e.get("REASON") == "vote" for e in entries), "vote mode: journald REASON=vote")
        check(all(len(json.loads(e["NEIGHBORS"])) == 2 for e in entries), "vote mode: journald NEIGHBORS lists 2")

        # ---------------------------------------------------- run 2: overload
        # A small ring: it fills within the first second, so RSS must be flat after that.
        cfg = config(d, model, store, photo, drain_ms=2000, ring=256,
                     camera_extra="fps = 1000\nbelt_speed = 20000\nloop = true\nejector_distance_m = 0.005",
                     inspect_extra="queue = 2\neject_lead_ms = 1")
        with Daemon(cfg) as daemon:
            wait_ready(daemon)
            overload_stream = Consumer(os.path.join(d, "rejects.sock"))
            overload_stream.start()
            rss = []
            for _ in range(16):
                time.sleep(0.5)
                t0 = time.monotonic()
                check(request(daemon.control, {"command": "ping"}, timeout=2)["ok"], "ping answered under overload")
                check(time.monotonic() - t0 < 1.0, "ping answered within 1 s under overload")
                rss.append(rss_kib(daemon.process.pid))
            s = status(daemon)
            print("overload status:", json.dumps({k: s[k] for k in ("beans_total", "unscored_total", "queues", "latency_ms")}))
            check(s["unscored_total"] > 0, "fail-safe counter rose under overload: %s" % s["unscored_total"])
            check(s["rejects_total"] >= s["unscored_total"], "reject-unscored: unscored beans ejected")
            check(max(rss) < 400 * 1024, "RSS bounded: max %d KiB" % max(rss))
            check(max(rss[4:]) - min(rss[4:]) < 2048, "RSS flat (within 2 MiB) after the first 2 s of overload: %s" % rss)
            code, took = daemon.stop()
            check(code == 0, "exit 0 after overload (SIGTERM with beans in flight, took %.1fs)" % took)
            overload_stream.join(timeout=10)
            pid = daemon.process.pid
        # Drain: the pipeline finished what was in flight and every ejected bean reached the stream.
        all_entries = journal(pid, None, 1)
        drained = [e for e in all_entries if e.get("MESSAGE", "").startswith("pipeline drained")]
        summaries = [e for e in all_entries if "not scored before their eject time" in e.get("MESSAGE", "")]
        check(summaries and sum(int(e["UNSCORED_REJECTED"]) for e in summaries) >= s["unscored_total"],
              "fail-safe verdicts logged in aggregate: %s" % [e.get("MESSAGE") for e in summaries])
        check(not [e for e in all_entries if e.get("MESSAGE_ID") == IDS["reject"] and e.get("VERDICT") == "unscored"],
              "no per-bean journald entry for fail-safe ejections")
        check(len(drained) == 1 and drained[0].get("COMPLETE") == "true", "pipeline drained completely: %s" % drained)
        # resume_after 0 after a restart: numbering continues from rejects.seq, so a gap covers the
        # numbers of the earlier run; no event of this run may be lost.
        lost = [g for g in overload_stream.gaps if g.get("reason") in ("overflow", "dropped")]
        oseqs = [e["seq"] for e in overload_stream.events]
        check(oseqs == list(range(oseqs[0], oseqs[0] + len(oseqs))), "overload stream contiguous")
        check(int(drained[0]["REJECTS"]) == len(overload_stream.events) and not lost,
              "every ejected bean up to the stop was published: %s in journald, %d on the stream, gaps %s"
              % (drained[0]["REJECTS"], len(overload_stream.events), overload_stream.gaps[:3]))
        print("run 2: overload: %d unscored of %d; RSS %d..%d KiB" % (s["unscored_total"], s["beans_total"], min(rss), max(rss)))
print("PASS")
PYEOF
