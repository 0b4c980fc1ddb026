"""switchyard.torch on a GPU (skipped without torch, a CUDA device or a CUDA build): CUDA results
equal the CPU's bit for bit (routing, alignment, layouts, permute, combine, sum-reduce) or within
the experts' declared tolerance; the ops run on torch's current stream, capture in a CUDA graph
and replay with new inputs, and compile with fullgraph=True."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import reference as ref  # noqa: E402
import switchyard as sy  # noqa: E402
import switchyard.torch as st  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and sy.built_with_cuda() and sy.cuda_device_available()),
    reason="needs a CUDA device, torch with CUDA and a CUDA build of switchyard",
)


def _logits(seed, rows, experts, dtype=torch.bfloat16):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(ref.tie_free_logits(rng, rows, experts)).to(dtype)


def _both(fn, *cpu_args):
    """fn on the CPU tensors and on their CUDA copies; the CUDA results moved back."""
    cuda_args = [a.cuda() if torch.is_tensor(a) else a for a in cpu_args]
    out_cpu = fn(*cpu_args)
    out_cuda = fn(*cuda_args)
    torch.cuda.synchronize()
    to_cpu = lambda o: o.cpu() if torch.is_tensor(o) else o  # noqa: E731
    if isinstance(out_cuda, (tuple, list)):
        return list(out_cpu), [to_cpu(o) for o in out_cuda]
    return out_cpu, to_cpu(out_cuda)


def _equal(a, b):
    for x, y in zip(a, b) if isinstance(a, list) else [(a, b)]:
        assert torch.equal(x, y), (x, y)


@pytest.mark.parametrize("rows", [1, 7, 513])
def test_routing_ops_bitwise_equal_to_cpu(rows):
    logits = _logits(rows, rows, 256)
    bias = torch.linspace(-0.2, 0.2, 256)

    def softmax(lg, b):
        w, i = lg.new_empty(rows, 8, dtype=torch.float32), lg.new_empty(rows, 8, dtype=torch.int32)
        st.topk_softmax(w, i, lg, True, 0.0, b)
        return w, i

    _equal(*_both(softmax, logits, bias))
    _equal(*_both(lambda lg, b: st.moe_fused_gate(lg, b, 8, 4, 9, 1, 2.5, False), logits, bias))
    cfg = st.TopKConfig(top_k=8, scoring_func="sigmoid", renormalize=True)
    _equal(*_both(lambda lg: list(st.select_experts(None, lg, cfg)[:2]), logits))


def test_align_layout_permute_combine_bitwise_equal_to_cpu():
    rng = np.random.default_rng(1)
    ids = torch.from_numpy(
        np.stack([rng.permutation(128)[:8] for _ in range(300)]).astype(np.int32)
    )
    padded = sy.align_max_padded(2400, 128, 64)

    def align(i):
        out = (i.new_empty(padded), i.new_empty(-(-padded // 64)), i.new_empty(1))
        st.moe_align_block_size(i, 128, 64, *out)
        return out

    cpu, cuda = _both(align, ids)
    _equal(cpu, cuda)
    ref.check_alignment(ids.numpy(), 128, 64, *(c.numpy() for c in cuda))

    x = torch.randn(300, 64, dtype=torch.bfloat16)
    w = torch.rand(300, 8)

    def layer(i, xx, ww):
        _, _, src_to_dst, dst_to_src, _ = st.expert_layout(i, 128, alignment=16)
        y = st.permute(xx, dst_to_src, 8)
        y2 = st.permute(xx, dst_to_src, 8, src_to_dst)  # token-major on CUDA
        return [y, y2, st.combine(y, src_to_dst, ww, 2.5)]

    _equal(*_both(layer, ids, x, w))
    stacked = torch.randn(300, 8, 64, dtype=torch.bfloat16)

    def reduce(s):
        out = s.new_empty(300, 64)
        st.moe_sum_reduce(s, out, 2.5)
        return out

    _equal(*_both(reduce, stacked))


def _experts(seed, rows, experts=16, top_k=4, hidden=256, inter=128):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(rows, hidden, generator=g) * 2 - 1).bfloat16()
    w13 = ((torch.rand(experts, 2 * inter, hidden, generator=g) * 2 - 1) / hidden**0.5).bfloat16()
    w2 = ((torch.rand(experts, hidden, inter, generator=g) * 2 - 1) / inter**0.5).bfloat16()
    ids = torch.stack([torch.randperm(experts, generator=g)[:top_k] for _ in range(rows)]).int()
    w = torch.rand(rows, top_k, generator=g) + 0.1
    return x, w13, w2, w, ids


@pytest.mark.parametrize("rows", [1, 33, 1024])
def test_fused_experts_cuda_against_cpu(rows):
    x, w13, w2, w, ids = _experts(rows, rows)
    cfg = st.MoeRunnerConfig(inplace=False)
    cpu, cuda = _both(
        lambda *a: st.fused_experts(a[0], a[1], a[2], (a[3], a[4]), cfg), x, w13, w2, w, ids
    )
    # experts.h: about 2^-8 relative per term for bf16, plus float32 summation order.
    scale = cpu.float().abs().max()
    assert (cuda.float() - cpu.float()).abs().max() <= 2**-6 * scale


@pytest.mark.parametrize("rows", [1, 1024])
def test_interleaved_w13_on_cuda_matches_halves_on_cpu(rows):
    # interleave_w13 on the GPU equals the CPU's bit for bit; fused_experts with the packed
    # weights (at 1024 rows: the grouped-GEMM path with the activation in GEMM1's epilogue)
    # matches the halves layout on the CPU within the experts' tolerance.
    x, w13, w2, w, ids = _experts(rows + 5, rows)
    packed_cpu = sy.interleave_w13(w13)
    packed_cuda = sy.interleave_w13(w13.cuda())
    torch.cuda.synchronize()
    assert torch.equal(packed_cuda.cpu(), packed_cpu)
    cpu = sy.fused_experts(x, w13, w2, w, ids)
    cuda = sy.fused_experts(
        x.cuda(), packed_cuda, w2.cuda(), w.cuda(), ids.cuda(), w13_interleaved=True
    ).cpu()
    scale = cpu.float().abs().max()
    assert (cuda.float() - cpu.float()).abs().max() <= 2**-6 * scale


@pytest.mark.parametrize(
    "rows,top_k,hidden", [(1, 9, 7168), (4, 8, 7168), (3, 8, 2880), (5, 1, 40)]
)
def test_moe_sum_reduce_decode_sizes_and_graph_replay(rows, top_k, hidden):
    """Decode sizes (a row split into column pieces), CUDA against CPU bit for bit; then captured
    in a CUDA graph (no weights and no map: the capture holds one kernel) and replayed on new
    input."""
    g = torch.Generator().manual_seed(rows * 100 + top_k)

    def reduce(s):
        out = s.new_empty(rows, hidden)
        st.moe_sum_reduce(s, out, 2.5)
        return out

    x = torch.randn(rows, top_k, hidden, generator=g).bfloat16()
    _equal(*_both(reduce, x))
    static = x.cuda()
    out = reduce(static)  # warm-up outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        st.moe_sum_reduce(static, out, 2.5)
    fresh = torch.randn(rows, top_k, hidden, generator=g).bfloat16()
    static.copy_(fresh)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out.cpu(), reduce(fresh))


def test_runs_on_the_current_stream():
    logits = _logits(2, 64, 128).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        w, ids = st.moe_fused_gate(logits, torch.zeros(128, device="cuda"), 4, 2, 8)
    side.synchronize()
    w_ref, ids_ref = st.moe_fused_gate(logits.cpu(), torch.zeros(128), 4, 2, 8)
    assert torch.equal(ids.cpu(), ids_ref) and torch.equal(w.cpu(), w_ref)


def _layer(hidden, logits, bias, w13, w2, sorted_ids, expert_ids, post_pad):
    cfg = st.TopKConfig(
        top_k=4,
        use_grouped_topk=True,
        num_expert_group=4,
        topk_group=2,
        correction_bias=bias,
        routed_scaling_factor=2.0,
        renormalize=True,
    )
    topk = st.select_experts(hidden, logits, cfg)
    st.moe_align_block_size(topk.topk_ids, 16, 16, sorted_ids, expert_ids, post_pad)
    return st.fused_experts(
        hidden, w13, w2, topk, st.MoeRunnerConfig(inplace=False, routed_scaling_factor=2.0)
    )


def _layer_inputs(seed, rows=64):
    x, w13, w2, _, _ = _experts(seed, rows)
    padded = sy.align_max_padded(rows * 4, 16, 16)
    bufs = (
        torch.empty(padded, dtype=torch.int32),
        torch.empty(-(-padded // 16), dtype=torch.int32),
        torch.empty(1, dtype=torch.int32),
    )
    args = (x, _logits(seed, rows, 16), torch.linspace(-0.1, 0.1, 16), w13, w2, *bufs)
    return [a.cuda() for a in args]


def test_cuda_graph_capture_and_replay():
    static = _layer_inputs(3)
    _layer(*static)  # warm-up outside the capture (lazy initialisation)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = _layer(*static)
    for seed in (4, 5):
        fresh = _layer_inputs(seed)
        for dst, src in zip(static, fresh):
            dst.copy_(src)
        graph.replay()
        torch.cuda.synchronize()
        expect = _layer(*fresh)
        assert torch.equal(out, expect)
        assert torch.equal(static[5], fresh[5]) and torch.equal(static[7], fresh[7])


def test_torch_compile_fullgraph_on_cuda():
    args = _layer_inputs(6)
    eager = _layer(*args)
    compiled = torch.compile(_layer, fullgraph=True)(*args)
    assert torch.equal(eager, compiled)


def test_device_mismatch_names_the_argument():
    logits = _logits(7, 4, 32).cuda()
    w, ids = torch.empty(4, 2, device="cuda"), torch.empty(4, 2, dtype=torch.int32, device="cuda")
    with pytest.raises(sy.InvalidArgumentError, match=r"bias\.device = cpu"):
        st.topk_softmax(w, ids, logits, False, 0.0, torch.zeros(32))
