"""switchyard.torch on CPU tensors (skipped without torch): the ops equal the numpy path bit for
bit, pass torch.library.opcheck (schema, fake tensors, functionalization), and a whole MoE layer
traces under torch.compile(fullgraph=True) and gives the eager result."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import reference as ref  # noqa: E402
import switchyard as sy  # noqa: E402
import switchyard.torch as st  # noqa: E402
from switchyard import sglang_compat as sgl  # noqa: E402

ops = torch.ops.switchyard


def _logits(seed, rows, experts, dtype=torch.float32):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(ref.tie_free_logits(rng, rows, experts)).to(dtype)


def test_topk_softmax_and_sigmoid_match_the_numpy_path():
    logits = _logits(0, 23, 64)
    bias = torch.linspace(0, 0.3, 64)
    for fn, args in ((st.topk_softmax, (True, 0.0, bias)), (st.topk_sigmoid, (True, bias))):
        w, ids = torch.empty(23, 6), torch.empty(23, 6, dtype=torch.int32)
        fn(w, ids, logits, *args)
        w_np, ids_np = np.empty((23, 6), np.float32), np.empty((23, 6), np.int32)
        getattr(sgl, fn.__name__)(
            w_np, ids_np, logits.numpy(), *(a.numpy() if torch.is_tensor(a) else a for a in args)
        )
        np.testing.assert_array_equal(ids.numpy(), ids_np)
        np.testing.assert_array_equal(w.numpy(), w_np)


def test_bfloat16_logits_and_moe_fused_gate():
    logits = _logits(1, 17, 256, torch.bfloat16)
    bias = torch.linspace(-0.2, 0.2, 256)
    w, ids = st.moe_fused_gate(logits, bias, 8, 4, 9, 1, 2.5, False)
    assert w.dtype == torch.float32 and ids.dtype == torch.int32 and w.shape == (17, 9)
    ref_w, ref_ids, near = ref.route(
        logits.float().numpy(),
        8,
        score_func="sigmoid",
        bias=bias.numpy(),
        group_score="top2sum",
        num_groups=8,
        topk_groups=4,
        renormalize=True,
        routed_scaling_factor=2.5,
        num_shared=1,
    )
    keep = ~near
    np.testing.assert_array_equal(ids.numpy()[keep], ref_ids[keep])
    np.testing.assert_allclose(w.numpy()[keep], ref_w[keep], rtol=1e-5, atol=1e-7)


def test_select_experts_with_sglang_config_fields():
    logits = _logits(2, 31, 256)
    bias = torch.linspace(-0.2, 0.2, 256)
    cfg = st.TopKConfig(
        top_k=9,
        use_grouped_topk=True,
        num_expert_group=8,
        topk_group=4,
        num_fused_shared_experts=1,
        correction_bias=bias,
        routed_scaling_factor=2.5,
    )
    out = st.select_experts(torch.zeros(31, 8), logits, cfg, num_token_non_padded=torch.tensor(29))
    w_np, ids_np, _ = sgl.select_experts(
        None,
        logits.numpy(),
        sgl.TopKConfig(
            top_k=9,
            use_grouped_topk=True,
            num_expert_group=8,
            topk_group=4,
            num_fused_shared_experts=1,
            correction_bias=bias.numpy(),
            routed_scaling_factor=2.5,
        ),
        num_token_non_padded=29,
    )
    np.testing.assert_array_equal(out.topk_ids.numpy(), ids_np)
    np.testing.assert_array_equal(out.topk_weights.numpy(), w_np)
    assert torch.all(out.topk_ids[29:] == -1)


def test_align_layout_permute_combine_sum_reduce():
    rng = np.random.default_rng(3)
    ids = torch.from_numpy(np.stack([rng.permutation(32)[:4] for _ in range(40)]).astype(np.int32))
    padded = sy.align_max_padded(160, 32, 16)
    sorted_ids = torch.empty(padded, dtype=torch.int32)
    expert_ids = torch.empty(-(-padded // 16), dtype=torch.int32)
    post_pad = torch.empty(1, dtype=torch.int32)
    st.moe_align_block_size(ids, 32, 16, sorted_ids, expert_ids, post_pad, None, False)
    ref.check_alignment(
        ids.numpy(), 32, 16, sorted_ids.numpy(), expert_ids.numpy(), post_pad.numpy()
    )

    counts, offsets, src_to_dst, dst_to_src, overflow = st.expert_layout(ids, 32, alignment=8)
    x = torch.randn(40, 24, dtype=torch.bfloat16)
    y = st.permute(x, dst_to_src, 4)
    w = torch.rand(40, 4)
    out = st.combine(y, src_to_dst, w, 1.5)
    expect = 1.5 * (w[:, :, None] * x[:, None, :].float()).sum(dim=1)
    torch.testing.assert_close(out.float(), expect, rtol=2**-7, atol=1e-2)

    stacked = torch.randn(40, 4, 24, dtype=torch.bfloat16)
    reduced = torch.empty(40, 24, dtype=torch.bfloat16)
    st.moe_sum_reduce(stacked, reduced, 2.0)
    torch.testing.assert_close(
        reduced.float(), 2.0 * stacked.float().sum(dim=1), rtol=2**-7, atol=1e-2
    )


def test_moe_sum_reduce_bitwise_and_empty_tensors():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(7, 9, 48, generator=g).bfloat16()
    out = torch.empty(7, 48, dtype=torch.bfloat16)
    st.moe_sum_reduce(x, out, 2.5)
    acc = torch.zeros(7, 48)
    for k in range(9):  # float32, k ascending, then * rsf and one rounding
        acc = acc + x[:, k].float()
    torch.testing.assert_close(out, (2.5 * acc).bfloat16(), rtol=0, atol=0)
    # No tokens: empty tensors (their data pointers may be null) in and out.
    empty_out = torch.empty(0, 48, dtype=torch.bfloat16)
    st.moe_sum_reduce(torch.empty(0, 9, 48, dtype=torch.bfloat16), empty_out, 2.5)
    # combine with no tokens: empty weights and map count as given, not absent.
    y = torch.randn(5, 16)
    assert st.combine(y, torch.empty(0, dtype=torch.int64), torch.empty(0, 4), 1.0).shape == (0, 16)


def _experts_problem(seed, rows=12, experts=8, top_k=2, hidden=32, inter=16, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(rows, hidden, generator=g) * 2 - 1).to(dtype)
    w13 = ((torch.rand(experts, 2 * inter, hidden, generator=g) * 2 - 1) / hidden**0.5).to(dtype)
    w2 = ((torch.rand(experts, hidden, inter, generator=g) * 2 - 1) / inter**0.5).to(dtype)
    ids = torch.stack([torch.randperm(experts, generator=g)[:top_k] for _ in range(rows)]).int()
    w = torch.rand(rows, top_k, generator=g) + 0.1
    return x, w13, w2, w, ids


def test_fused_experts_bfloat16_against_the_loop():
    x, w13, w2, w, ids = _experts_problem(4)
    cfg = st.MoeRunnerConfig(inplace=False, routed_scaling_factor=2.0)
    out = st.fused_experts(x, w13, w2, (w, ids, None), cfg)
    assert out.dtype == torch.bfloat16
    expect = ref.fused_experts(
        x.float().numpy(),
        w13.float().numpy(),
        w2.float().numpy(),
        w.numpy(),
        ids.numpy(),
        routed_scaling_factor=2.0,
    )
    torch.testing.assert_close(
        out.float(), torch.from_numpy(expect).float(), rtol=2**-6, atol=2**-6
    )
    hidden = x.clone()
    assert (
        st.fused_experts(hidden, w13, w2, (w, ids), st.MoeRunnerConfig(routed_scaling_factor=2.0))
        is hidden
    )
    torch.testing.assert_close(hidden, out, rtol=0, atol=0)


def test_parameters_that_require_grad_are_accepted():
    x, w13, w2, w, ids = _experts_problem(5)
    p13, p2 = torch.nn.Parameter(w13), torch.nn.Parameter(w2)
    out = st.fused_experts(x, p13, p2, (w, ids), st.MoeRunnerConfig(inplace=False))
    torch.testing.assert_close(
        out, st.fused_experts(x, w13, w2, (w, ids), st.MoeRunnerConfig(inplace=False))
    )


def test_errors_carry_the_library_message():
    w, ids = torch.empty(4, 2), torch.empty(4, 3, dtype=torch.int32)
    with pytest.raises(sy.InvalidArgumentError, match=r"top_k_ids\.shape = \[4, 3\]"):
        st.topk_softmax(w, ids, torch.zeros(4, 8))


def test_opcheck():
    logits = _logits(6, 9, 32)
    bias = torch.zeros(32)
    rng = np.random.default_rng(6)
    ids = torch.from_numpy(np.stack([rng.permutation(32)[:4] for _ in range(9)]).astype(np.int32))
    padded = sy.align_max_padded(36, 32, 16)
    x, w13, w2, w, eids = _experts_problem(6, rows=9, experts=32, top_k=4)
    samples = [
        (
            ops.topk_softmax,
            (torch.empty(9, 4), torch.empty(9, 4, dtype=torch.int32), logits, True, 0.0, bias),
        ),
        (
            ops.topk_sigmoid,
            (torch.empty(9, 5), torch.empty(9, 5, dtype=torch.int32), logits, True, bias, 2.5, 1),
        ),
        (ops.moe_fused_gate, (logits, bias, 4, 2, 4, 0, 2.5, True)),
        (
            ops.route,
            (
                logits,
                bias,
                None,
                None,
                None,
                0,
                4,
                0,
                "sigmoid",
                "top2sum",
                4,
                2,
                True,
                1.0,
                False,
                0.0,
            ),
        ),
        (
            ops.moe_align_block_size,
            (
                ids,
                32,
                16,
                torch.empty(padded, dtype=torch.int32),
                torch.empty(-(-padded // 16), dtype=torch.int32),
                torch.empty(1, dtype=torch.int32),
                None,
                False,
            ),
        ),
        (ops.moe_sum_reduce, (torch.randn(9, 4, 16), torch.empty(9, 16), 1.0)),
        (ops.expert_layout, (ids, 32, 4, 0, None)),
        (ops.permute, (torch.randn(9, 16), torch.arange(36, dtype=torch.int64), 4)),
        (
            ops.combine,
            (torch.randn(36, 16), torch.arange(36, dtype=torch.int64), torch.rand(9, 4), 1.0),
        ),
        (
            ops.fused_experts,
            (x, w13, w2, w, eids, None, None, None, "silu", False, 1.0, 1.702, 7.0),
        ),
    ]
    for op, args in samples:
        torch.library.opcheck(op, args)


def _layer(hidden, logits, bias, w13, w2):
    """A DeepSeek-style MoE layer through switchyard.torch only."""
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
    out = st.fused_experts(
        hidden, w13, w2, topk, st.MoeRunnerConfig(inplace=False, routed_scaling_factor=2.0)
    )
    w, ids = st.moe_fused_gate(logits, bias, 4, 2, 4, 0, 2.0, True)
    padded = ids.numel() + 32 * 15
    sorted_ids = torch.empty(padded, dtype=torch.int32)
    expert_ids = torch.empty((padded + 15) // 16, dtype=torch.int32)
    post_pad = torch.empty(1, dtype=torch.int32)
    st.moe_align_block_size(ids, 32, 16, sorted_ids, expert_ids, post_pad)
    stacked = torch.stack([out, out], dim=1)
    summed = torch.empty_like(out)
    st.moe_sum_reduce(stacked, summed, 0.5)
    return summed, topk.topk_ids, w, sorted_ids, post_pad


def test_torch_compile_fullgraph_matches_eager():
    x, w13, w2, _, _ = _experts_problem(7, rows=10, experts=32, top_k=4)
    logits = _logits(7, 10, 32)
    bias = torch.linspace(-0.1, 0.1, 32)
    eager = _layer(x, logits, bias, w13, w2)
    compiled = torch.compile(_layer, fullgraph=True)(x, logits, bias, w13, w2)
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
