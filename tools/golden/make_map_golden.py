#!/usr/bin/env python
"""Detection mAP golden from pycocotools (the COCO reference implementation) on a seeded random
case: 6 images, 3 classes, jittered / missing / spurious detections. Writes
tests/fixtures/metrics/map_case.json with the boxes (x0 y0 x1 y1 pixels) and pycocotools'
AP@[.50:.95], AP@.50, AP@.75 (area "all", maxDets 100).

Usage: .venv-golden/bin/python tools/golden/make_map_golden.py   (needs pycocotools in the venv)
"""
import contextlib
import io
import json
import random
from pathlib import Path

import pycocotools
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/metrics/map_case.json"


def main() -> None:
    rng = random.Random(20241201)
    classes = ["cat", "dog", "car"]
    images, gts, dets = [], [], []
    for i in range(6):
        W, H = 640, 427
        images.append({"id": i, "width": W, "height": H})
        for _ in range(rng.randint(1, 4)):
            c = rng.randrange(3)
            x0, y0 = rng.uniform(0, W - 120), rng.uniform(0, H - 120)
            w, h = rng.uniform(20, 120), rng.uniform(20, 120)
            gts.append({"image": i, "label": classes[c], "box": [x0, y0, x0 + w, y0 + h]})
            if rng.random() < 0.85:  # detected, with jitter
                j = [rng.gauss(0, 0.08 * w), rng.gauss(0, 0.08 * h), rng.gauss(0, 0.08 * w), rng.gauss(0, 0.08 * h)]
                dets.append({"image": i, "label": classes[c], "score": rng.random(),
                             "box": [x0 + j[0], y0 + j[1], x0 + w + j[2], y0 + h + j[3]]})
        for _ in range(rng.randint(0, 2)):  # spurious
            x0, y0 = rng.uniform(0, W - 100), rng.uniform(0, H - 100)
            dets.append({"image": i, "label": classes[rng.randrange(3)], "score": rng.random(),
                         "box": [x0, y0, x0 + rng.uniform(10, 100), y0 + rng.uniform(10, 100)]})
    coco_gt = {"images": images, "categories": [{"id": k, "name": n} for k, n in enumerate(classes)],
               "annotations": []}
    for k, g in enumerate(gts):
        x0, y0, x1, y1 = g["box"]
        coco_gt["annotations"].append({"id": k + 1, "image_id": g["image"], "category_id": classes.index(g["label"]),
                                       "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                       "iscrowd": 0})
    coco_dt = [{"image_id": d["image"], "category_id": classes.index(d["label"]), "score": d["score"],
                "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]]}
               for d in dets]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_gt
        gt.createIndex()
        dt = gt.loadRes(coco_dt)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out = {"pycocotools_version": pycocotools.__version__ if hasattr(pycocotools, "__version__") else "2.0.11",
           "ground_truth": gts, "detections": dets,
           "map": ev.stats[0], "map50": ev.stats[1], "map75": ev.stats[2]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}: mAP {ev.stats[0]:.6f} mAP50 {ev.stats[1]:.6f} mAP75 {ev.stats[2]:.6f}")


if __name__ == "__main__":
    main()
