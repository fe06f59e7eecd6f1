#!/usr/bin/env python
"""Benchmark Hugging Face transformers' PaliGemmaForConditionalGeneration on CPU, on the
same inputs as `paligemma run`: tests/fixtures/photos/chelsea.png + "caption en", built
with transformers' PaliGemmaProcessor (tools/golden/hf_utils.prompt_inputs).

Phases, each timed with time.perf_counter under torch.inference_mode, batch 1:

  load           from_pretrained(dtype, attn_implementation) (+ .eval()).  transformers
                 has no SDPA for Gemma 2 (soft-capping): for PaliGemma 2, --attn sdpa means
                 SDPA in SigLIP and eager in the decoder (config.attn_used says so)
  image_encode   model.model.get_image_features(pixel_values): vision tower + projector
  prefill_full   one forward over the whole prompt WITH pixel_values (so it includes
                 the image encode), use_cache=True, logits_to_keep=1 (last row, as
                 generate does)
  prefill_only   prefill_full - image_encode (derived)
  prefill_text   one forward over the prompt given the precomputed image features
                 (forward(..., mm_encoder_outputs={"image": features})): embedding,
                 scatter of the features, decoder, last-row logits.  This is what our
                 CLI's prefill_s measures.
  ttft           time to first token: prefill_full forward + argmax of its logits
  decode         greedy steps with the KV cache after the prefill_full forward: a manual
                 loop of N - 1 single-token forwards (token t+1 = argmax of step t's
                 logits; eos does not stop it), so N new tokens = the prefill's token +
                 N - 1 steps; decode tokens/s = (N - 1) / time of those steps.
  generate       (unless --no-generate-check) one model.generate(max_new_tokens = N,
                 min_new_tokens = N, greedy): its tokens must equal the manual loop's,
                 and generate_decode_tokens_per_s = (N - 1) / (generate_s - ttft).

Each phase is repeated --repeats times after --warmup untimed rounds; the JSON has
every sample, the median (the number to quote) and the minimum, and per round the
share of the CPU other processes took meanwhile (other_cpu_frac_per_round: a round
with a large one was disturbed).  A disturbed round (other processes took more than
--max-other-cpu) is repeated, up to --extra-rounds more, and left out of the statistics
("disturbed": true when fewer than --repeats clean rounds were had).
Memory: peak RSS of this process, from getrusage(RUSAGE_SELF).ru_maxrss and
/proc/self/status VmHWM (the model, the inputs, the KV caches; the f32 3B model
alone is ~12 GB).

Usage:
  .venv-golden/bin/python bench/hf_bench.py --model DIR [--dtype bf16|f32] [--attn eager|sdpa]
      [--threads N] [--new-tokens 16] [--repeats 3] [--warmup 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "golden"))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))

from fullsize_check import PHOTO, PROMPT  # noqa: E402
from machine import OtherLoad  # noqa: E402
from model_costs import load_dims  # noqa: E402


def log(*a) -> None:
    print(time.strftime("%H:%M:%S"), "[hf_bench]", *a, file=sys.stderr, flush=True)


def memory() -> dict:
    """Peak and current RSS of this process in bytes."""
    out = {"ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    for line in Path("/proc/self/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            out[k + "_bytes"] = int(v.split()[0]) * 1024
    return out


def summary(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "samples": samples}


class Bench:
    """One loaded model and its inputs; each method times one phase."""

    def __init__(self, model, inputs: dict):
        self.model, self.inputs = model, inputs

    def image_encode(self):
        t = time.perf_counter()
        feats = self.model.model.get_image_features(self.inputs["pixel_values"])
        return time.perf_counter() - t, feats

    def prefill_full(self):
        """(forward seconds, forward + argmax seconds, output, first token)."""
        t = time.perf_counter()
        out = self.model(**self.inputs, use_cache=True, logits_to_keep=1)
        t_fwd = time.perf_counter() - t
        tok = int(out.logits[0, -1].argmax())
        return t_fwd, time.perf_counter() - t, out, tok

    def prefill_text(self, feats):
        kw = {k: v for k, v in self.inputs.items() if k != "pixel_values"}
        t = time.perf_counter()
        out = self.model(**kw, mm_encoder_outputs={"image": feats}, use_cache=True, logits_to_keep=1)
        dt = time.perf_counter() - t
        return dt, int(out.logits[0, -1].argmax())

    def decode(self, past, first: int, steps: int):
        """steps greedy single-token forwards after the prefill; (seconds, tokens incl. first)."""
        import torch

        toks = [first]
        t = time.perf_counter()
        for _ in range(steps):
            out = self.model(input_ids=torch.tensor([[toks[-1]]]), past_key_values=past, use_cache=True,
                             logits_to_keep=1)
            past = out.past_key_values
            toks.append(int(out.logits[0, -1].argmax()))
        return time.perf_counter() - t, toks

    def generate(self, n: int):
        t = time.perf_counter()
        g = self.model.generate(**self.inputs, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                                top_k=None, top_p=None, temperature=None)
        dt = time.perf_counter() - t
        return dt, g[0, self.inputs["input_ids"].shape[1]:].tolist()

    def round(self, new_tokens: int) -> dict:
        """One measurement of every phase (+ the CPU share other processes took meanwhile)."""
        with OtherLoad() as load:
            t_img, feats = self.image_encode()
            t_fwd, t_ttft, out, first = self.prefill_full()
            t_text, first_text = self.prefill_text(feats)
            t_dec, toks = self.decode(out.past_key_values, first, new_tokens - 1)
        return {"other_cpu_frac": load.frac, "image_encode_s": t_img, "prefill_full_s": t_fwd, "ttft_s": t_ttft,
                "prefill_text_s": t_text,
                "prefill_only_s": t_fwd - t_img, "decode_s": t_dec, "tokens": toks,
                "first_token_text_only": first_text}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="PaliGemma checkpoint directory (HF layout)")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"], help="dtype the model is loaded in")
    ap.add_argument("--attn", default="sdpa", choices=["eager", "sdpa"], help="attn_implementation")
    ap.add_argument("--threads", default=os.cpu_count(), type=int, help="torch.set_num_threads (default: all cores)")
    ap.add_argument("--new-tokens", default=16, type=int, help="tokens to generate (>= 2; eos does not stop)")
    ap.add_argument("--repeats", default=3, type=int, help="timed rounds; the median is the reported number")
    ap.add_argument("--max-other-cpu", default=0.1, type=float,
                    help="a round during which other processes used more than this share of the CPU is disturbed: "
                         "it is repeated (up to --extra-rounds) and left out of the statistics")
    ap.add_argument("--extra-rounds", default=3, type=int,
                    help="rounds allowed beyond --repeats to replace disturbed ones")
    ap.add_argument("--warmup", default=1, type=int, help="untimed rounds first (2 new tokens each)")
    ap.add_argument("--no-generate-check", action="store_true", help="skip the model.generate cross-check")
    ap.add_argument("--json", type=Path, help="write the result here (default: stdout)")
    a = ap.parse_args()
    if a.new_tokens < 2:
        ap.error("--new-tokens must be >= 2")

    import numpy
    import torch
    import transformers
    from hf_utils import prompt_inputs
    from transformers import PaliGemmaForConditionalGeneration

    torch.set_num_threads(a.threads)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[a.dtype]
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "numpy": numpy.__version__}
    log(f"versions {versions}; {a.dtype} {a.attn}, {a.threads} threads, {a.new_tokens} new tokens, "
        f"{a.warmup} warm-up + {a.repeats} timed rounds")

    dims = load_dims(a.model)
    attn = a.attn
    if a.attn == "sdpa" and dims.model_type == "gemma2":
        # transformers refuses SDPA for Gemma 2 (attention soft-capping): SDPA in SigLIP, eager in the decoder
        attn = {"": "sdpa", "vision_config": "sdpa", "text_config": "eager"}
        log("Gemma 2 has no SDPA in transformers: sdpa = SDPA in the vision tower, eager in the decoder")
    t = time.perf_counter()
    model = PaliGemmaForConditionalGeneration.from_pretrained(a.model, dtype=dtype, attn_implementation=attn).eval()
    load_s = time.perf_counter() - t
    attn_used = {"vision": model.model.vision_tower.config._attn_implementation,
                 "text": model.model.language_model.config._attn_implementation}
    mem_loaded = memory()
    log(f"loaded {a.model} in {load_s:.1f} s; RSS {mem_loaded.get('VmRSS_bytes', 0) / 2**30:.2f} GiB")
    inputs = prompt_inputs(model.config, PHOTO, PROMPT)
    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    L = int(inputs["input_ids"].shape[1])
    bench = Bench(model, inputs)

    rounds, gen = [], None
    with torch.inference_mode():
        for i in range(a.warmup):
            r = bench.round(2)
            log(f"warm-up {i + 1}/{a.warmup}: ttft {r['ttft_s']:.2f} s")
        clean = lambda r: r["other_cpu_frac"] <= a.max_other_cpu  # noqa: E731
        while sum(map(clean, rounds)) < a.repeats and len(rounds) < a.repeats + a.extra_rounds:
            r = bench.round(a.new_tokens)
            rounds.append(r)
            log(f"round {len(rounds)} ({sum(map(clean, rounds))}/{a.repeats} undisturbed): image "
                f"{r['image_encode_s']:.2f} s, prefill full {r['prefill_full_s']:.2f} s "
                f"(text only {r['prefill_text_s']:.2f} s), ttft {r['ttft_s']:.2f} s, decode "
                f"{(a.new_tokens - 1) / r['decode_s']:.2f} tokens/s; tokens {r['tokens']}; other processes used "
                f"{100 * r['other_cpu_frac']:.0f}% of the CPU" + ("" if clean(r) else " (disturbed)"))
        if not a.no_generate_check:
            gs, gtoks = bench.generate(a.new_tokens)
            gen = {"generate_s": gs, "tokens": gtoks, "tokens_equal_manual_loop": gtoks == rounds[0]["tokens"]}
            log(f"generate: {gs:.2f} s, tokens {gtoks} ({'==' if gen['tokens_equal_manual_loop'] else '!='} "
                f"the manual loop's)")

    used = [r for r in rounds if clean(r)] or rounds
    phases = {k: summary([r[k] for r in used])
              for k in ("image_encode_s", "prefill_full_s", "prefill_only_s", "prefill_text_s", "ttft_s", "decode_s")}
    steps = a.new_tokens - 1
    dec = phases["decode_s"]
    result = {
        "engine": "transformers",
        "config": {"dtype": a.dtype, "attn": a.attn, "attn_used": attn_used, "threads": a.threads,
                   "new_tokens": a.new_tokens,
                   "decode_steps": steps, "repeats": a.repeats, "warmup": a.warmup, "statistic": "median",
                   "versions": versions, "model": str(a.model), "image": str(PHOTO), "prompt": PROMPT,
                   "prompt_tokens": L, "dims": dims.to_dict(),
                   "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_s": load_s,
        "phases": phases,
        "image_encode_s": phases["image_encode_s"]["median"],
        "prefill_full_s": phases["prefill_full_s"]["median"],
        "prefill_only_s": phases["prefill_only_s"]["median"],
        "prefill_text_s": phases["prefill_text_s"]["median"],
        "prefill_tokens_per_s": L / phases["prefill_text_s"]["median"],
        "ttft_s": phases["ttft_s"]["median"],
        "decode_s": dec["median"],
        "decode_tokens_per_s": steps / dec["median"],
        "decode_tokens_per_s_best": steps / dec["min"],
        "tokens": rounds[0]["tokens"],
        "tokens_stable_across_rounds": all(r["tokens"] == rounds[0]["tokens"] for r in rounds),
        "prefill_text_first_token_equal": all(r["first_token_text_only"] == r["tokens"][0] for r in rounds),
        "other_cpu_frac_per_round": [r["other_cpu_frac"] for r in used],
        "rounds_run": len(rounds), "rounds_used": len(used), "disturbed": len(used) < a.repeats,
        "other_cpu_frac_all_rounds": [r["other_cpu_frac"] for r in rounds],
        "memory": {"after_load": mem_loaded, "peak": memory()},
        "peak_rss_bytes": memory()["VmHWM_bytes"],
    }
    if gen:
        gen["generate_decode_tokens_per_s"] = steps / max(gen["generate_s"] - result["ttft_s"], 1e-9)
        result["generate"] = gen
    text = json.dumps(result, indent=2) + "\n"
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(text)
        log(f"wrote {a.json}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
