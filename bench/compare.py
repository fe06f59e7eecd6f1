#!/usr/bin/env python
"""Our CLI against Hugging Face transformers on one checkpoint, same inputs
(tests/fixtures/photos/chelsea.png + "caption en", greedy, N new tokens, eos ignored).

Runs, sequentially and each in its own process (so peak RSS is per run):
  - bench/hf_bench.py for each --hf-configs entry (default bf16/f32 x eager/sdpa);
  - our CLI --ours-repeats times, with --ours-cmd (a template; default
    `{cli} run --model {model} --image {image} --prompt {prompt} --max-new-tokens {new_tokens}
     --no-eos-stop --json --threads {threads}`; any command printing the same JSON works,
     e.g. a future `paligemma bench`).  Per phase the median over the repeats is used.
Peak RSS of every child comes from os.wait4 (ru_maxrss of that child only).  Before
each run it waits (--idle-wait) for the machine to be idle, and records the share of
the CPU other processes took during the run (other_cpu_frac: a run with a large one
was disturbed: such runs, and such HF rounds, are repeated (--max-other-cpu,
--extra-rounds) and left out of the statistics).  For our CLI
it counts the mapped weight pages it touched (file-backed, shared with the page cache).

Then writes one JSON (--out) and prints two markdown tables: the phases per engine with
"ours speedup" columns (HF time / our time, our rate / HF rate, HF RSS / our RSS), and
each phase as a fraction of the machine's limits (--peak-tflops, default 2.2 TFLOP/s
bf16, for image encode and prefill; --peak-gbs, default 22 GB/s, for decode: weight
bytes read per token at the run's dtype x tokens/s), with bench/model_costs.py.

Usage:
  .venv-golden/bin/python bench/compare.py --model /tmp/pg-fullsize/pg2/model --new-tokens 8 \\
      [--hf-configs bf16-eager,bf16-sdpa,f32-eager,f32-sdpa] [--repeats 3] [--ours-repeats 3] \\
      [--cli build-bench/paligemma] [--ours-cmd TEMPLATE] [--threads N] [--out results/x.json]
  .venv-golden/bin/python bench/compare.py --table results/x.json     # re-print the tables
  .venv-golden/bin/python bench/compare.py --model DIR --update results/x.json --hf-configs bf16-sdpa \\
      --ours-cmd ''                                                      # re-run disturbed entries
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tools" / "golden"))

import model_costs as mc  # noqa: E402
from machine import OtherLoad, wait_idle  # noqa: E402
from fullsize_check import PHOTO, PROMPT  # noqa: E402
DEFAULT_OURS_CMD = ("{cli} run --model {model} --image {image} --prompt {prompt} --max-new-tokens {new_tokens} "
                    "--no-eos-stop --json --threads {threads}")
BYTES = {"bf16": 2, "f32": 4}


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), "[compare]", *a, file=sys.stderr, flush=True)


def run_child(cmd: list[str], stdout=None, idle_wait_s: float = 0) -> dict:
    """Run cmd to completion: exit code, peak RSS bytes of this child only, wall seconds,
    and other_cpu_frac: the share of all cores that OTHER processes used meanwhile (a
    benchmark with a large one was disturbed)."""
    if idle_wait_s > 0:
        wait_idle(idle_wait_s, log=log)
    log("$ " + shlex.join(cmd))
    t, load = time.perf_counter(), OtherLoad().start()
    p = subprocess.Popen(cmd, stdout=stdout)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    other = load.finish(own_cpu=ru.ru_utime + ru.ru_stime)
    return {"rc": os.waitstatus_to_exitcode(status), "peak_rss_bytes": ru.ru_maxrss * 1024, "wall_s": wall,
            "cpu_s": ru.ru_utime + ru.ru_stime, "other_cpu_frac": other}


def run_hf(a, name: str, out_dir: Path) -> dict | None:
    dtype, attn = name.split("-")
    js = out_dir / f"hf-{name}.json"
    cmd = [sys.executable, str(BENCH / "hf_bench.py"), "--model", str(a.model), "--dtype", dtype, "--attn", attn,
           "--threads", str(a.threads), "--new-tokens", str(a.new_tokens), "--repeats", str(a.repeats),
           "--max-other-cpu", str(a.max_other_cpu), "--extra-rounds", str(a.extra_rounds), "--json", str(js)]
    c = run_child(cmd, idle_wait_s=a.idle_wait)
    if c["rc"] != 0 or not js.exists():
        log(f"hf {name} failed (exit {c['rc']})")
        return None
    r = json.loads(js.read_text())
    r["child"] = c
    r["other_cpu_frac"] = c["other_cpu_frac"]
    return r


def run_ours(a) -> dict | None:
    fields = {"cli": str(a.cli), "model": str(a.model), "image": str(PHOTO), "prompt": PROMPT,
              "new_tokens": a.new_tokens, "threads": a.threads}
    cmd = [x.format(**fields) for x in shlex.split(a.ours_cmd)]
    runs = []
    clean = lambda r: r["other_cpu_frac"] <= a.max_other_cpu  # noqa: E731
    while sum(map(clean, runs)) < a.ours_repeats and len(runs) < a.ours_repeats + a.extra_rounds:
        with tempfile.TemporaryFile() as f:
            c = run_child(cmd, stdout=f, idle_wait_s=a.idle_wait)
            f.seek(0)
            text = f.read().decode()
        if c["rc"] != 0:
            log(f"ours failed (exit {c['rc']})")
            return None
        j = json.loads(text)
        rss = c["peak_rss_bytes"]
        runs.append({"timings": j["timings"], "tokens": j["tokens"], "prompt_tokens": j["prompt_tokens"], **c})
        runs[-1]["disturbed"] = not clean(runs[-1])
        t = j["timings"]
        log(f"ours run {len(runs)} ({sum(map(clean, runs))}/{a.ours_repeats} undisturbed): image {t['image_encode_s']:.2f} s, prefill {t['prefill_s']:.2f} s, "
            f"decode {t['decode_s']:.2f} s, peak RSS {rss / 2**30:.2f} GiB; tokens {j['tokens']}; other processes "
            f"used {100 * c['other_cpu_frac']:.0f}% of the CPU")
    return {"engine": "paligemma.cpp", "command": shlex.join(cmd), "dtype": "bf16", "runs": runs,
            "tokens": runs[0]["tokens"], "prompt_tokens": runs[0]["prompt_tokens"]}


STATS = {"median": statistics.median, "min": min}


def metrics(res: dict, stat: str) -> dict[str, dict]:
    """Per column (ours, HF configs): the table's numbers under statistic stat (median or
    min over the repeats, per phase), and the fractions of the machine's limits."""
    f = STATS[stat]
    d = mc.Dims(**res["dims"])
    L = res["costs"]["prompt_tokens"]
    cols = {}
    o = res.get("ours")
    if o:
        used = [r for r in o["runs"] if not r.get("disturbed")] or o["runs"]
        t = lambda k: f([r["timings"][k] for r in used])  # noqa: E731
        steps = len(o["tokens"]) - 1  # the first token comes from the prefill; decode_s covers N - 1 steps
        img, pre = t("image_encode_s"), t("prefill_s")
        cols["ours"] = {"load_s": t("load_s"), "image_encode_s": img, "prefill_text_s": pre, "ttft_s": img + pre,
                        "decode_tokens_per_s": steps / t("decode_s"),
                        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in o["runs"]),
                        "other_cpu_frac": max(r["other_cpu_frac"] for r in used),
                        "bytes_per_param": res["weight_bytes_per_param"]}
    for name, r in res.get("hf", {}).items():
        if not r:
            continue
        ph = {k: v[stat] for k, v in r["phases"].items()}
        cols[f"HF {name}"] = {"load_s": r["load_s"], "image_encode_s": ph["image_encode_s"],
                              "prefill_text_s": ph["prefill_text_s"], "ttft_s": ph["ttft_s"],
                              "decode_tokens_per_s": r["config"]["decode_steps"] / ph["decode_s"],
                              "peak_rss_bytes": r["peak_rss_bytes"],
                              "other_cpu_frac": max(r["other_cpu_frac_per_round"]),
                              "bytes_per_param": BYTES[r["config"]["dtype"]]}
    peak_f, peak_b = res["limits_def"]["peak_tflops"] * 1e12, res["limits_def"]["peak_gbs"] * 1e9
    fv, fp = mc.vision_flops(d), mc.prefill_flops(d, L)
    for m in cols.values():
        m["prefill_tokens_per_s"] = L / m["prefill_text_s"]
        wb = mc.decode_weight_bytes(d, m["bytes_per_param"])
        m["limits"] = {"image_encode_flops_frac": fv / m["image_encode_s"] / peak_f,
                       "prefill_flops_frac": fp / m["prefill_text_s"] / peak_f,
                       "ttft_flops_frac": (fv + fp) / m["ttft_s"] / peak_f,
                       "decode_bw_frac": wb * m["decode_tokens_per_s"] / peak_b,
                       "decode_weight_gbs": wb * m["decode_tokens_per_s"] / 1e9}
    return cols


def weight_bytes_per_param(model_dir: Path, d: mc.Dims) -> float:
    """Stored bytes per parameter of the checkpoint (what our engine reads as is)."""
    idx = model_dir / "model.safetensors.index.json"
    if idx.exists():
        total = json.loads(idx.read_text())["metadata"]["total_size"]
    else:
        total = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    params = mc.vision_params(d) + mc.decoder_params(d) + d.hidden * d.vocab
    return round(total / params * 2) / 2  # 2.0 for bf16 / f16, 4.0 for f32


ROWS = [  # (label, key, kind): kind t = time (lower is better), r = rate, m = memory
    ("load s", "load_s", "t"),
    ("image encode s", "image_encode_s", "t"),
    ("prefill s (given image features)", "prefill_text_s", "t"),
    ("prefill tokens/s", "prefill_tokens_per_s", "r"),
    ("TTFT s (image + prefill + argmax)", "ttft_s", "t"),
    ("decode tokens/s", "decode_tokens_per_s", "r"),
    ("peak RSS GiB", "peak_rss_bytes", "m"),
]


def tables(res: dict, stat: str = "median") -> str:
    ms = metrics(res, stat)
    cols = list(ms.items())
    ours = ms.get("ours")

    def val(r, key):
        v = r.get(key)
        return None if v is None else (v / 2**30 if key == "peak_rss_bytes" else v)

    fmt = lambda v: "n/a" if v is None else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")  # noqa: E731
    head = ["phase"] + [c for c, _ in cols] + ([f"ours vs {c[3:]}" for c, _ in cols[1:]] if ours else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key, kind in ROWS:
        row = [label] + [fmt(val(r, key)) for _, r in cols]
        if ours:
            for _, r in cols[1:]:
                o, h = val(ours, key), val(r, key)
                if not o or not h:
                    row.append("n/a")
                else:
                    row.append(f"{(o / h if kind == 'r' else h / o):.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    out = "\n".join(lines)
    out = f"Statistic over the repeats: {stat}.\n\n" + out
    out += ("\n\nSpeedup columns: HF time / our time, our rate / HF rate, HF RSS / our RSS "
            "(> 1: ours is faster / smaller).\n\n")
    p = res["limits_def"]
    lh = ["fraction of the machine's limits"] + [c for c, _ in cols]
    lines = ["| " + " | ".join(lh) + " |", "|" + "---|" * len(lh)]
    spec = [(f"image encode, of {p['peak_tflops']} TFLOP/s", "image_encode_flops_frac"),
            (f"prefill, of {p['peak_tflops']} TFLOP/s", "prefill_flops_frac"),
            (f"TTFT (image + prefill), of {p['peak_tflops']} TFLOP/s", "ttft_flops_frac"),
            (f"decode weight bytes, of {p['peak_gbs']} GB/s", "decode_bw_frac")]
    for label, key in spec:
        lines.append("| " + " | ".join([label] + [f"{100 * r['limits'][key]:.1f}%" for _, r in cols]) + " |")
    lines.append("| other processes' CPU share during the run | "
                 + " | ".join(f"{100 * r.get('other_cpu_frac', 0):.0f}%" for _, r in cols) + " |")
    out += "\n".join(lines)
    c = res["costs"]
    out += (f"\n\nCosts (bench/model_costs.py): image encode {c['vision_tflop']:.3f} TFLOP, "
            f"{c['prompt_tokens']}-token prefill {c['prefill_tflop']:.3f} TFLOP; decode reads "
            f"{c['decode_params_read_g']:.3f} G parameters per token (x 2 bytes bf16, x 4 bytes f32).\n")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--new-tokens", default=8, type=int)
    ap.add_argument("--repeats", default=3, type=int, help="hf_bench timed rounds per config")
    ap.add_argument("--ours-repeats", default=3, type=int, help="CLI runs (the median per phase is used)")
    ap.add_argument("--threads", default=os.cpu_count(), type=int)
    ap.add_argument("--hf-configs", default="bf16-eager,bf16-sdpa,f32-eager,f32-sdpa",
                    help="DTYPE-ATTN list ('' for none)")
    ap.add_argument("--cli", default=REPO / "build-bench" / "paligemma", type=Path)
    ap.add_argument("--ours-cmd", default=DEFAULT_OURS_CMD,
                    help="our command line, with {cli} {model} {image} {prompt} {new_tokens} {threads} ('' to skip)")
    ap.add_argument("--peak-tflops", default=2.2, type=float, help="compute limit (bf16) in TFLOP/s")
    ap.add_argument("--peak-gbs", default=22.0, type=float, help="memory bandwidth limit in GB/s")
    ap.add_argument("--idle-wait", default=300, type=float,
                    help="before each run wait up to this many seconds for the machine to be idle (0: don't)")
    ap.add_argument("--max-other-cpu", default=0.1, type=float,
                    help="a run (HF: a round) during which other processes took more than this share of the CPU "
                         "is disturbed: repeated and left out of the statistics")
    ap.add_argument("--extra-rounds", default=3, type=int, help="runs / rounds allowed beyond the repeats")
    ap.add_argument("--statistic", default="median", choices=list(STATS),
                    help="per phase over the repeats: median (default) or min (best; less sensitive to a busy machine)")
    ap.add_argument("--out", type=Path, help="write the combined JSON here")
    ap.add_argument("--update", type=Path,
                    help="load this result, re-run only --hf-configs (and ours unless --ours-cmd ''), "
                         "replace those entries, write it back (or to --out)")
    ap.add_argument("--table", type=Path, help="only print the tables of a saved JSON")
    a = ap.parse_args()
    if a.table:
        print(tables(json.loads(a.table.read_text()), a.statistic))
        return 0
    if not a.model:
        ap.error("--model is required")

    d = mc.load_dims(a.model)
    res = {"model": str(a.model), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "new_tokens": a.new_tokens,
           "threads": a.threads, "dims": d.to_dict(), "hf": {}, "ours": None,
           "limits_def": {"peak_tflops": a.peak_tflops, "peak_gbs": a.peak_gbs}}
    if a.update:
        # re-run only the given configurations (e.g. disturbed ones) and keep the rest of FILE
        res = json.loads(a.update.read_text())
        res.setdefault("updated", []).append({"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                                              "hf_configs": a.hf_configs, "ours": bool(a.ours_cmd)})
        a.out = a.out or a.update
    with tempfile.TemporaryDirectory() as td:
        for name in filter(None, a.hf_configs.split(",")):
            res["hf"][name] = run_hf(a, name, Path(td))
    if a.ours_cmd:
        res["ours"] = run_ours(a)
    L = next((r["config"]["prompt_tokens"] for r in res["hf"].values() if r),
             res["ours"]["prompt_tokens"] if res["ours"] else mc.prompt_tokens(d))
    res["costs"] = {"prompt_tokens": L, "vision_tflop": mc.vision_flops(d) / 1e12,
                    "prefill_tflop": mc.prefill_flops(d, L) / 1e12,
                    "decode_params_read_g": mc.decode_params_read(d) / 1e9}
    res["weight_bytes_per_param"] = weight_bytes_per_param(a.model, d)
    for name, r in res["hf"].items():
        if r and res["ours"]:
            r["tokens_equal_ours"] = r["tokens"] == res["ours"]["tokens"]
    res["summary"] = {s: metrics(res, s) for s in STATS}
    text = tables(res, a.statistic)
    res["table_markdown"] = text
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")
        log(f"wrote {a.out}")
    print(text)
    for name, r in res["hf"].items():
        if r and "tokens_equal_ours" in r:
            print(f"greedy tokens HF {name} {'==' if r['tokens_equal_ours'] else '!='} ours: {r['tokens']}"
                  + ("" if r["tokens_equal_ours"] else f" vs {res['ours']['tokens']}"))
    return 0 if all(res["hf"].values()) and (res["ours"] or not a.ours_cmd) else 1


if __name__ == "__main__":
    sys.exit(main())
