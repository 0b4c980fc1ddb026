#!/usr/bin/env python3
"""cuBLAS and PyTorch grouped-GEMM references for the experts' two GEMMs at prefill sizes.

What a grouped GEMM of these shapes can reach on the card, measured in the same run as
`switchyard bench experts` (session 23, bench/NOTES.md):

  bmm      torch.bmm over E equal groups of M*K/E rows (cuBLAS, batched): the even split, no
           ragged tiles, no routing; an upper reference for the GEMMs alone.
  grouped  torch._grouped_mm (PyTorch's CUTLASS sm90 grouped GEMM) on the same rows split by a
           uniform random top-K routing (ragged: what a serving engine sees) and evenly.

GEMM1 = x [rows, H] @ w13^T (n = 2I, no activation), GEMM2 = h [rows, I] @ w2^T (n = H), bf16 in
and out, float32 accumulation. Weights are [E, n, k] as SGLang stores them (K-major B). Timing:
CUDA events over `--reps` back-to-back calls after 3 warm-ups, `--pause` seconds of idle before
each case. TFLOP/s = 2 * rows * n * k / us. Writes JSON (--output) and a table to stdout.

The card's clocks follow its power and temperature: after seconds of Mixtral-sized GEMMs, the
Qwen3-30B cases of the same process ran up to 1.6x slower (H200, session 23). For numbers to
compare, run one preset per process (`--models qwen3-30b-a3b`), as the session's notes did.
"""
import argparse
import json
import sys
import time

import torch

PRESETS = {  # name: (E, K, H, I)
    "mixtral-8x7b": (8, 2, 4096, 14336),
    "qwen3-30b-a3b": (128, 8, 2048, 768),
    "deepseek-v3": (256, 8, 7168, 2048),
}


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps * 1e3  # us


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(PRESETS))
    ap.add_argument("--tokens", default="4096,8192")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pause", type=float, default=1.0, help="idle seconds before each case")
    ap.add_argument("--output", help="JSON file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_grouped_gemm_reference: no CUDA device", file=sys.stderr)
        return 2
    has_grouped = hasattr(torch, "_grouped_mm")
    gen = torch.Generator(device="cuda").manual_seed(args.seed)
    rows_out = []
    for name in args.models.split(","):
        E, K, H, I = PRESETS[name]
        w13 = torch.randn(E, 2 * I, H, device="cuda", dtype=torch.bfloat16, generator=gen)
        w2 = torch.randn(E, H, I, device="cuda", dtype=torch.bfloat16, generator=gen)
        for M in [int(t) for t in args.tokens.split(",")]:
            S = M * K
            print(f"[ref] {name} {M} tokens", file=sys.stderr)
            torch.cuda.synchronize()
            time.sleep(args.pause)
            x = torch.randn(S, H, device="cuda", dtype=torch.bfloat16, generator=gen)
            h = torch.randn(S, I, device="cuda", dtype=torch.bfloat16, generator=gen)
            f1, f2 = 2.0 * S * 2 * I * H, 2.0 * S * H * I
            row = {"model": name, "E": E, "K": K, "H": H, "I": I, "tokens": M}
            if S % E == 0:  # bmm: equal groups
                r = S // E
                xb, hb = x.view(E, r, H), h.view(E, r, I)
                u1 = timed(lambda: torch.bmm(xb, w13.transpose(1, 2)), args.reps)
                u2 = timed(lambda: torch.bmm(hb, w2.transpose(1, 2)), args.reps)
                row.update(bmm_gemm1_us=u1, bmm_gemm2_us=u2,
                           bmm_tflops=(f1 + f2) / (u1 + u2) / 1e6)
            if has_grouped:
                ids = torch.rand((M, E), generator=gen, device="cuda").topk(K, dim=1).indices
                even = torch.full((E,), S // E, device="cuda", dtype=torch.int64)
                even += torch.arange(E, device="cuda") < S % E
                ragged = torch.bincount(ids.flatten(), minlength=E)
                for kind, counts in (("ragged", ragged), ("even", even)):
                    offs = torch.cumsum(counts, 0).to(torch.int32)
                    w13t, w2t = w13.transpose(-2, -1), w2.transpose(-2, -1)
                    u1 = timed(lambda: torch._grouped_mm(x, w13t, offs=offs), args.reps)
                    u2 = timed(lambda: torch._grouped_mm(h, w2t, offs=offs), args.reps)
                    row[f"grouped_{kind}_gemm1_us"] = u1
                    row[f"grouped_{kind}_gemm2_us"] = u2
                    row[f"grouped_{kind}_tflops"] = (f1 + f2) / (u1 + u2) / 1e6
                    row[f"grouped_{kind}_max_rows"] = int(counts.max())
            rows_out.append(row)
            del x, h
        del w13, w2
        torch.cuda.empty_cache()
    print("| model | tokens | bmm (even) us, TFLOP/s | grouped ragged us, TFLOP/s | "
          "grouped even us, TFLOP/s |")
    print("|---|---|---|---|---|")
    for r in rows_out:
        def cell(prefix):
            if f"{prefix}_gemm1_us" not in r:
                return "-"
            us = r[f"{prefix}_gemm1_us"] + r[f"{prefix}_gemm2_us"]
            return f"{us:.1f}, {r[f'{prefix}_tflops']:.0f}"
        print(f"| {r['model']} | {r['tokens']} | {cell('bmm')} | {cell('grouped_ragged')} | "
              f"{cell('grouped_even')} |")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"bench": "torch_grouped_gemm_reference",
                       "card": torch.cuda.get_device_name(),
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "torch": torch.__version__, "rows": rows_out}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
