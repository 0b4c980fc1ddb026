#!/usr/bin/env python3
"""PyTorch per-expert loop baseline for `switchyard bench experts` (same shapes, same token sweep).

For each preset (Mixtral-8x7B, Qwen3-30B-A3B, DeepSeek-V3) and token count: seeded random bf16
weights w13 [E, 2I, H] and w2 [E, H, I] (SGLang layout), random routing (K distinct experts per
token, uniform), then the classic eager loop over the hit experts:

    y_e = silu(x_e @ w13[e][:I].T) * (x_e @ w13[e][I:].T) @ w2[e].T;  out += w * y_e  (index_add_)

Timing: CUDA events around each call (the loop needs one host sync for the per-expert counts, so
it is not graph-capturable), 2 warm-up calls, median of the timed calls. Metrics as in the C++
bench: TB/s over the weights of the experts hit, TFLOP/s = 2 * slots * (2I*H + H*I).
Writes JSON (--output) and a table to stdout; progress to stderr.
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

PRESETS = {  # name: (E, K, H, I)
    "mixtral-8x7b": (8, 2, 4096, 14336),
    "qwen3-30b-a3b": (128, 8, 2048, 768),
    "deepseek-v3": (256, 8, 7168, 2048),
}
DEFAULT_TOKENS = "1,2,4,8,16,32,64,128,256,512,1024,2048,4096,8192,16384"


def routing(m, k, e, gen):
    # K distinct experts per token: the top-k of uniform noise.
    ids = torch.rand((m, e), generator=gen, device="cuda").topk(k, dim=1).indices.to(torch.int64)
    w = 0.05 + torch.rand((m, k), generator=gen, device="cuda")
    return ids, w


def moe_loop(x, w13, w2, ids, w, inter):
    m, h = x.shape
    k = ids.shape[1]
    flat = ids.reshape(-1)
    counts = torch.bincount(flat, minlength=w13.shape[0]).tolist()  # the one host sync
    order = torch.argsort(flat, stable=True)
    wflat = w.reshape(-1)
    out = torch.zeros((m, h), dtype=torch.float32, device=x.device)
    start = 0
    for e, n in enumerate(counts):
        if n == 0:
            continue
        sel = order[start:start + n]
        start += n
        tok = sel // k
        hid = x[tok] @ w13[e].t()
        act = F.silu(hid[:, :inter]) * hid[:, inter:]
        y = act @ w2[e].t()
        out.index_add_(0, tok, y.float() * wflat[sel, None])
    return out.to(x.dtype)


def time_call(fn, budget_s):
    fn()
    fn()
    torch.cuda.synchronize()
    times = []
    t_end = time.time() + budget_s
    while len(times) < 3 or (len(times) < 20 and time.time() < t_end):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e3)  # us
    times.sort()
    return times[len(times) // 2], len(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mixtral-8x7b,qwen3-30b-a3b,deepseek-v3")
    ap.add_argument("--tokens", default=DEFAULT_TOKENS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=150.0,
                    help="stop the sweep (skipping the remaining cases) after this long")
    ap.add_argument("--output", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_experts_baseline: no CUDA device", file=sys.stderr)
        return 3
    dtype = torch.bfloat16
    tokens = [int(t) for t in args.tokens.split(",")]
    t0 = time.time()
    rows = []
    names = list(PRESETS) if args.models == "all" else [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in PRESETS]
    if not names or unknown:
        print(f"torch_experts_baseline: --models {args.models!r}: expected all or a comma list of "
              f"{', '.join(PRESETS)}", file=sys.stderr)
        return 2
    for name in names:
        e, k, h, inter = PRESETS[name]
        gen = torch.Generator(device="cuda")
        gen.manual_seed(args.seed)
        print(f"[torch] {name}: generating weights", file=sys.stderr)
        w13 = torch.empty((e, 2 * inter, h), dtype=dtype, device="cuda").uniform_(
            -2 / math.sqrt(h), 2 / math.sqrt(h), generator=gen)
        w2 = torch.empty((e, h, inter), dtype=dtype, device="cuda").uniform_(
            -2 / math.sqrt(inter), 2 / math.sqrt(inter), generator=gen)
        expert_bytes = (2 * inter * h + h * inter) * 2
        for m in tokens:
            if time.time() - t0 > args.max_seconds:
                print(f"[torch] time budget spent: skipping {name} M={m}", file=sys.stderr)
                continue
            x = torch.empty((m, h), dtype=dtype, device="cuda").uniform_(-1, 1, generator=gen)
            ids, w = routing(m, k, e, gen)
            hit = int(torch.unique(ids).numel())
            us, calls = time_call(lambda: moe_loop(x, w13, w2, ids, w, inter), 2.0)
            flops = 2.0 * m * k * (2 * inter * h + h * inter)
            row = {"model": name, "E": e, "K": k, "H": h, "I": inter, "tokens": m,
                   "experts_hit": hit, "median_us": us, "calls": calls,
                   "tbps": hit * expert_bytes / (us * 1e6), "tflops": flops / (us * 1e6)}
            rows.append(row)
            print(f"[torch] {name:14s} M={m:<6d} {us:10.1f} us {row['tbps']:6.2f} TB/s "
                  f"{row['tflops']:7.1f} TFLOP/s", file=sys.stderr)
        del w13, w2
        torch.cuda.empty_cache()
    result = {"bench": "torch_experts_baseline", "card": torch.cuda.get_device_name(),
              "torch": torch.__version__, "dtype": "bfloat16",
              "method": "eager per-expert loop (one host sync for counts), CUDA events, "
                        "median of up to 20 calls after 2 warm-ups",
              "rows": rows}
    text = json.dumps(result, indent=1)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    print("| model | tokens | median us | TB/s | TFLOP/s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['tokens']} | {r['median_us']:.1f} | {r['tbps']:.2f} | "
              f"{r['tflops']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
