#!/usr/bin/env python3
"""Every switchyard.torch op against its PyTorch-native implementation, in one run on one GPU.

For each op, model shape and token count: the Switchyard op (through torch.ops.switchyard, as an
engine calls it) and the PyTorch-native code path engines fall back to (bench/torch_native.py;
the experts' per-expert loop is bench/torch_experts_baseline.py), on the same inputs:
  topk_softmax    Mixtral E=8 K=2, Qwen3 E=128 K=8, DeepSeek-V3 E=256 K=8 (softmax form)
  topk_sigmoid    Kimi K2 E=384 K=8, sigmoid + bias
  moe_fused_gate  DeepSeek-V3 E=256, 8 groups keep 4, K=8 + 1 fused shared expert, bias, rsf 2.5
  align           moe_align_block_size, block 64, at the (E, K) of the three presets
  layout/permute/combine   expert_layout (alignment 1), permute, combine at Qwen3 / DeepSeek-V3
  sum_reduce      moe_sum_reduce [M, K, H] -> [M, H]
  experts         fused_experts, bf16, Mixtral / Qwen3-30B-A3B / DeepSeek-V3 (random routing)
Timing: CUDA events around each call, median after 2 warm-ups ("eager": what an engine pays
without CUDA graphs, Python and dispatch included), and, where both sides can be captured, the
median of replays of a CUDA graph of 20 calls, per call ("graph": the GPU time plus launch).
ratio = torch us / switchyard us (> 1: Switchyard is faster). wrong = outputs that differ from
the native ones (routing: rows whose id sets differ, rows tied at the k-th key left out; align,
layout, permute: differing entries; combine, sum_reduce, experts: values off by more than
2^-7 (2^-6 for experts) of the largest). Inputs stay resident in L2 where they fit (no rotation):
the C++ `switchyard bench` measures the kernels with DRAM-rotating buffers.
Writes JSON (--output) and prints a table; progress to stderr.
"""

import argparse
import json
import math
import sys
import time

import torch

import torch_native as native
from torch_experts_baseline import moe_loop

import switchyard as sy
import switchyard.torch as st

GRAPH_CALLS = 20
ROUTING = {  # name: (E, K)
    "mixtral-8x7b": (8, 2),
    "qwen3-30b-a3b": (128, 8),
    "deepseek-v3": (256, 8),
}
EXPERTS = {  # name: (E, K, H, I)
    "mixtral-8x7b": (8, 2, 4096, 14336),
    "qwen3-30b-a3b": (128, 8, 2048, 768),
    "deepseek-v3": (256, 8, 7168, 2048),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def time_eager(fn, budget_s=1.0):
    fn()
    fn()
    torch.cuda.synchronize()
    times = []
    end = time.time() + budget_s
    while len(times) < 5 or (len(times) < 50 and time.time() < end):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e3)
    times.sort()
    return times[len(times) // 2]


def time_graph(fn):
    """Median per-call time of a CUDA graph of GRAPH_CALLS calls; None if fn cannot be captured."""
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(GRAPH_CALLS):
                fn()
        graph.replay()
        torch.cuda.synchronize()
    except Exception as e:  # e.g. a host synchronisation inside fn
        log(f"  (graph capture failed: {type(e).__name__}: {str(e).splitlines()[0][:100]})")
        torch.cuda.synchronize()
        return None
    times = []
    for _ in range(7):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e3 / GRAPH_CALLS)
    times.sort()
    del graph
    return times[len(times) // 2]


def measure(rows, op, model, tokens, sy_fn, torch_fn, wrong, graph=True):
    row = {"op": op, "model": model, "tokens": tokens, "wrong": int(wrong)}
    row["switchyard_us"] = time_eager(sy_fn)
    row["torch_us"] = time_eager(torch_fn)
    row["ratio"] = row["torch_us"] / row["switchyard_us"]
    sy_graph = time_graph(sy_fn) if graph else None
    torch_graph = time_graph(torch_fn) if graph else None
    row["switchyard_graph_us"] = sy_graph
    row["torch_graph_us"] = torch_graph
    row["graph_ratio"] = torch_graph / sy_graph if sy_graph and torch_graph else None
    rows.append(row)
    g = f"graph {sy_graph:8.1f} vs {torch_graph:8.1f} us" if row["graph_ratio"] else "graph n/a"
    log(
        f"  {op:15s} {model:14s} M={tokens:<6d} eager {row['switchyard_us']:8.1f} vs "
        f"{row['torch_us']:8.1f} us ({row['ratio']:5.2f}x)  {g}  wrong {row['wrong']}"
    )


def routing_wrong(ids_a, ids_b, key, k):
    """Rows whose id sets differ, leaving out rows with a tie at the k-th key (bf16 logits tie
    often; Switchyard gives ties to the lower index, torch.topk leaves the order unspecified)."""
    a = torch.sort(ids_a[:, :k].long(), dim=1).values
    b = torch.sort(ids_b[:, :k].long(), dim=1).values
    top = key.topk(min(k + 1, key.shape[1]), dim=1).values
    tied = (
        top[:, k - 1] == top[:, k]
        if top.shape[1] > k
        else torch.zeros_like(a[:, 0], dtype=torch.bool)
    )
    return int(((a != b).any(dim=1) & ~tied).sum())


def bench_routing(rows, tokens, gen):
    for model, (e, k) in ROUTING.items():
        for m in tokens:
            logits = torch.randn(m, e, generator=gen, device="cuda").bfloat16()
            w = torch.empty(m, k, device="cuda")
            ids = torch.empty(m, k, dtype=torch.int32, device="cuda")
            sy_fn = lambda: st.topk_softmax(w, ids, logits, True)  # noqa: E731
            sy_fn()
            key = torch.softmax(logits.float(), dim=-1)
            wrong = routing_wrong(ids, native.topk_softmax(logits, k)[1], key, k)
            measure(
                rows, "topk_softmax", model, m, sy_fn, lambda: native.topk_softmax(logits, k), wrong
            )
    e, k = 384, 8
    bias = torch.rand(e, generator=gen, device="cuda") * 0.1
    for m in tokens:
        logits = torch.randn(m, e, generator=gen, device="cuda").bfloat16()
        w = torch.empty(m, k, device="cuda")
        ids = torch.empty(m, k, dtype=torch.int32, device="cuda")
        sy_fn = lambda: st.topk_sigmoid(w, ids, logits, True, bias)  # noqa: E731
        sy_fn()
        key = logits.float().sigmoid() + bias
        wrong = routing_wrong(ids, native.topk_sigmoid(logits, bias, k)[1], key, k)
        measure(
            rows,
            "topk_sigmoid",
            "kimi-k2",
            m,
            sy_fn,
            lambda: native.topk_sigmoid(logits, bias, k),
            wrong,
        )
    e = 256
    bias = torch.rand(e, generator=gen, device="cuda") * 0.1
    for m in tokens:
        logits = torch.randn(m, e, generator=gen, device="cuda").bfloat16()
        sy_fn = lambda: st.moe_fused_gate(logits, bias, 8, 4, 9, 1, 2.5, False)  # noqa: E731
        torch_fn = lambda: native.grouped_topk(logits, bias, 8, 4, 8, 2.5)  # noqa: E731
        key = logits.float().sigmoid() + bias  # group masking aside
        wrong = routing_wrong(sy_fn()[1], torch_fn()[1], key, 8)
        measure(rows, "moe_fused_gate", "deepseek-v3", m, sy_fn, torch_fn, wrong)


def random_ids(m, e, k, gen):
    return torch.rand((m, e), generator=gen, device="cuda").topk(k, dim=1).indices.int()


def bench_align(rows, tokens, gen):
    block = 64
    for model, (e, k) in ROUTING.items():
        for m in tokens:
            ids = random_ids(m, e, k, gen)
            padded = sy.align_max_padded(m * k, e, block)
            out = (
                torch.empty(padded, dtype=torch.int32, device="cuda"),
                torch.empty(-(-padded // block), dtype=torch.int32, device="cuda"),
                torch.empty(1, dtype=torch.int32, device="cuda"),
            )
            sy_fn = lambda: st.moe_align_block_size(ids, e, block, *out)  # noqa: E731
            sy_fn()
            ref = native.align(ids, e, block)
            wrong = sum(int((a != b).sum()) for a, b in zip(out, ref))
            measure(rows, "align", model, m, sy_fn, lambda: native.align(ids, e, block), wrong)


def bench_layout_permute_combine(rows, tokens, gen):
    for model in ("qwen3-30b-a3b", "deepseek-v3"):
        e, k, h, _ = EXPERTS[model]
        for m in tokens:
            ids = random_ids(m, e, k, gen)
            x = torch.randn(m, h, generator=gen, device="cuda").bfloat16()
            w = torch.rand(m, k, generator=gen, device="cuda")
            layout = st.expert_layout(ids, e)
            src_to_dst, dst_to_src = layout[2], layout[3]
            ref_src, ref_dst = native.layout(ids, e)
            wrong = int((src_to_dst != ref_src).sum()) + int((dst_to_src != ref_dst).sum())
            measure(
                rows,
                "expert_layout",
                model,
                m,
                lambda: st.expert_layout(ids, e),
                lambda: native.layout(ids, e),
                wrong,
            )
            # With the inverse map: the token-major kernel (each x row read once).
            y = st.permute(x, dst_to_src, k, src_to_dst)
            wrong = int((y != native.permute(x, dst_to_src, k)).any(dim=1).sum())
            measure(
                rows,
                "permute",
                model,
                m,
                lambda: st.permute(x, dst_to_src, k, src_to_dst),
                lambda: native.permute(x, dst_to_src, k),
                wrong,
            )
            out = st.combine(y, src_to_dst, w, 2.5)
            diff = (out.float() - native.combine(y, src_to_dst, w, 2.5).float()).abs()
            wrong = int((diff > 2**-7 * out.float().abs().max()).sum())
            measure(
                rows,
                "combine",
                model,
                m,
                lambda: st.combine(y, src_to_dst, w, 2.5),
                lambda: native.combine(y, src_to_dst, w, 2.5),
                wrong,
            )


def bench_sum_reduce(rows, tokens, gen):
    for model, k, h in (("qwen3-30b-a3b", 8, 2048), ("deepseek-v3", 9, 7168)):
        for m in tokens:
            x = torch.randn(m, k, h, generator=gen, device="cuda").bfloat16()
            out = torch.empty(m, h, dtype=torch.bfloat16, device="cuda")
            sy_fn = lambda: st.moe_sum_reduce(x, out, 2.5)  # noqa: E731
            sy_fn()
            diff = (out.float() - native.sum_reduce(x, 2.5).float()).abs()
            wrong = int((diff > 2**-7 * out.float().abs().max()).sum())
            measure(rows, "sum_reduce", model, m, sy_fn, lambda: native.sum_reduce(x, 2.5), wrong)


def bench_experts(rows, tokens, gen, models, deadline):
    cfg = st.MoeRunnerConfig(inplace=False)
    for model in models:
        e, k, h, inter = EXPERTS[model]
        log(f"[compare] {model}: generating weights")
        w13 = torch.empty(e, 2 * inter, h, dtype=torch.bfloat16, device="cuda").uniform_(
            -2 / math.sqrt(h), 2 / math.sqrt(h), generator=gen
        )
        w2 = torch.empty(e, h, inter, dtype=torch.bfloat16, device="cuda").uniform_(
            -2 / math.sqrt(inter), 2 / math.sqrt(inter), generator=gen
        )
        for m in tokens:
            if time.time() > deadline:
                log(f"[compare] time budget spent: skipping experts {model} M={m}")
                continue
            x = torch.empty(m, h, dtype=torch.bfloat16, device="cuda").uniform_(
                -1, 1, generator=gen
            )
            ids = random_ids(m, e, k, gen)
            w = 0.05 + torch.rand(m, k, generator=gen, device="cuda")
            sy_fn = lambda: st.fused_experts(x, w13, w2, (w, ids), cfg)  # noqa: E731
            torch_fn = lambda: moe_loop(x, w13, w2, ids.long(), w, inter)  # noqa: E731
            expect = torch_fn().float()
            wrong = int(((sy_fn().float() - expect).abs() > 2**-6 * expect.abs().max()).sum())
            # The loop synchronises with the host (per-expert counts): eager only.
            measure(rows, "fused_experts", model, m, sy_fn, torch_fn, wrong, graph=False)
        del w13, w2
        torch.cuda.empty_cache()


OPS = ("routing", "align", "layout", "sum_reduce", "experts")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", default=",".join(OPS), help="comma list of " + ", ".join(OPS))
    ap.add_argument("--tokens", default="1,32,512,4096,32768")
    ap.add_argument("--experts-tokens", default="1,32,512,2048")
    ap.add_argument("--experts-models", default=",".join(EXPERTS))
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=240.0,
        help="skip the remaining experts cases after this long",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default="")
    args = ap.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    unknown = [o for o in ops if o not in OPS]
    models = [m for m in args.experts_models.split(",") if m]
    if unknown or any(m not in EXPERTS for m in models):
        print(
            f"compare_torch: --ops {args.ops!r} / --experts-models {args.experts_models!r}: "
            f"expected comma lists of {', '.join(OPS)} / {', '.join(EXPERTS)}",
            file=sys.stderr,
        )
        return 2
    if not (torch.cuda.is_available() and sy.cuda_device_available()):
        print("compare_torch: needs a CUDA device and a CUDA build of switchyard", file=sys.stderr)
        return 3
    tokens = [int(t) for t in args.tokens.split(",")]
    gen = torch.Generator(device="cuda")
    gen.manual_seed(args.seed)
    t0 = time.time()
    rows = []
    if "routing" in ops:
        bench_routing(rows, tokens, gen)
    if "align" in ops:
        bench_align(rows, tokens, gen)
    if "layout" in ops:
        bench_layout_permute_combine(rows, [t for t in tokens if t <= 8192], gen)
    if "sum_reduce" in ops:
        bench_sum_reduce(rows, [t for t in tokens if t <= 8192], gen)
    if "experts" in ops:
        bench_experts(
            rows,
            [int(t) for t in args.experts_tokens.split(",")],
            gen,
            models,
            t0 + args.max_seconds,
        )
    result = {
        "bench": "compare_torch",
        "card": torch.cuda.get_device_name(),
        "switchyard_device": sy.cuda_device_description(),
        "torch": torch.__version__,
        "method": "CUDA events; eager: median of 5-50 calls after 2 warm-ups; graph: median of 7 "
        f"replays of a CUDA graph of {GRAPH_CALLS} calls, per call; inputs not rotated",
        "rows": rows,
    }
    if args.output:
        with open(args.output, "w") as f:
            f.write(json.dumps(result, indent=1) + "\n")
    print(
        "| op | model | tokens | switchyard us | torch us | ratio "
        "| graph: switchyard us | torch us | ratio | wrong |\n" + "|---" * 10 + "|"
    )
    fmt = lambda v: f"{v:.1f}" if v is not None else "-"  # noqa: E731
    for r in rows:
        gr = f"{r['graph_ratio']:.2f}" if r["graph_ratio"] else "-"
        print(
            f"| {r['op']} | {r['model']} | {r['tokens']} | {r['switchyard_us']:.1f} | "
            f"{r['torch_us']:.1f} | {r['ratio']:.2f} | {fmt(r['switchyard_graph_us'])} | "
            f"{fmt(r['torch_graph_us'])} | {gr} | {r['wrong']} |"
        )
    return (
        1
        if any(r["wrong"] for r in rows if r["op"] in ("align", "expert_layout", "permute"))
        else 0
    )


if __name__ == "__main__":
    sys.exit(main())
