"""Routing on the numpy path: switchyard.route and the SGLang-signature entry points, against the
float64 references of reference.py (ids exactly, weights to float32 accuracy)."""

import numpy as np
import pytest

import reference as ref
import switchyard as sy
from switchyard import sglang_compat as sgl

RTOL, ATOL = 1e-5, 1e-7


def _check(weights, ids, ref_w, ref_ids, near, max_near=0.05):
    """Exact ids and close weights on every row not decided by a near-tie."""
    assert near.mean() <= max_near, "too many near-ties: the generator is not tie-free"
    keep = ~near
    np.testing.assert_array_equal(ids[keep], ref_ids[keep])
    np.testing.assert_allclose(weights[keep], ref_w[keep], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("experts,top_k", [(8, 2), (128, 8), (160, 6), (384, 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("renormalize", [False, True])
def test_softmax_topk(experts, top_k, dtype, renormalize):
    rng = np.random.default_rng(experts * 10 + top_k)
    logits = ref.tie_free_logits(rng, 37, experts).astype(dtype)
    params = sy.RoutingParams(num_experts=experts, top_k=top_k, renormalize=renormalize)
    w, ids = sy.route(logits, params)
    assert w.dtype == np.float32 and ids.dtype == np.int32 and w.shape == (37, top_k)
    ref_w, ref_ids, near = ref.route(logits, top_k, renormalize=renormalize)
    _check(w, ids, ref_w, ref_ids, near)


def test_softmax_ties_go_to_the_lower_index():
    logits = np.zeros((3, 16), dtype=np.float32)
    logits[1, [3, 9, 12]] = 1.0  # three equal maxima: 3, 9 first
    logits[2] = np.repeat(np.float32([2.0, 1.0]), 8)
    w, ids = sy.route(logits, sy.RoutingParams(num_experts=16, top_k=2))
    np.testing.assert_array_equal(ids, [[0, 1], [3, 9], [0, 1]])
    np.testing.assert_allclose(w[0], [1 / 16, 1 / 16], rtol=RTOL)


@pytest.mark.parametrize(
    "experts,groups,keep,top_k,shared,rsf,apply",
    [
        (256, 8, 4, 8, 1, 2.5, False),  # DeepSeek-V3
        (256, 8, 4, 8, 0, 2.5, True),
        (64, 4, 2, 6, 2, 1.5, False),
        (384, 1, 1, 8, 1, 2.827, False),  # Kimi K2: one group = no grouping
    ],
)
def test_grouped_sigmoid_with_bias(experts, groups, keep, top_k, shared, rsf, apply):
    rng = np.random.default_rng(experts + groups + top_k + shared)
    logits = ref.tie_free_logits(rng, 41, experts)
    bias = (rng.permutation(experts) * (0.5 / experts)).astype(np.float32)
    params = sy.RoutingParams(
        num_experts=experts,
        top_k=top_k,
        num_shared_experts=shared,
        score_func="sigmoid",
        group_score="top2sum" if groups > 1 else "none",
        num_groups=groups,
        topk_groups=keep,
        renormalize=True,
        routed_scaling_factor=rsf,
        apply_rsf_on_output=apply,
    )
    w, ids = sy.route(logits, params, bias=bias)
    ref_w, ref_ids, near = ref.route(
        logits,
        top_k,
        score_func="sigmoid",
        bias=bias,
        group_score="top2sum" if groups > 1 else "none",
        num_groups=groups,
        topk_groups=keep,
        renormalize=True,
        routed_scaling_factor=rsf,
        apply_rsf_on_output=apply,
        num_shared=shared,
    )
    _check(w, ids, ref_w, ref_ids, near)


def test_grouped_softmax_max_deepseek_v2():
    rng = np.random.default_rng(2)
    logits = ref.tie_free_logits(rng, 50, 160)
    params = sy.RoutingParams(
        num_experts=160,
        top_k=6,
        score_func="softmax",
        group_score="max",
        num_groups=8,
        topk_groups=3,
    )
    w, ids = sy.route(logits, params)
    ref_w, ref_ids, near = ref.route(logits, 6, group_score="max", num_groups=8, topk_groups=3)
    _check(w, ids, ref_w, ref_ids, near)


def test_softcap_and_softmax_bias():
    rng = np.random.default_rng(3)
    logits = ref.tie_free_logits(rng, 20, 32)
    bias = np.linspace(-0.3, 0.3, 32).astype(np.float32)
    w, ids = sy.route(logits, sy.RoutingParams(num_experts=32, top_k=4, softcap=3.0), bias=bias)
    ref_w, ref_ids, near = ref.route(logits, 4, bias=bias, softcap=3.0)
    _check(w, ids, ref_w, ref_ids, near)


def test_padded_rows_and_int64_ids():
    rng = np.random.default_rng(4)
    logits = ref.tie_free_logits(rng, 10, 16)
    n = np.array([6], dtype=np.int32)
    w, ids = sy.route(
        logits,
        sy.RoutingParams(num_experts=16, top_k=3),
        num_tokens_non_padded=n,
        ids_dtype="int64",
    )
    assert ids.dtype == np.int64
    assert np.all(ids[6:] == -1) and np.all(w[6:] == 0)
    ref_w, ref_ids, _ = ref.route(logits[:6], 3)
    np.testing.assert_array_equal(ids[:6], ref_ids)


def test_zero_tokens():
    w, ids = sy.route(np.zeros((0, 8), np.float32), sy.RoutingParams(num_experts=8, top_k=2))
    assert w.shape == (0, 2) and ids.shape == (0, 2)


def test_strided_logits_rows():
    rng = np.random.default_rng(5)
    wide = ref.tie_free_logits(rng, 9, 24)
    logits = wide[:, :16]  # row stride 24, column stride 1
    w, ids = sy.route(logits, sy.RoutingParams(num_experts=16, top_k=2))
    ref_w, ref_ids, near = ref.route(np.ascontiguousarray(logits), 2)
    _check(w, ids, ref_w, ref_ids, near)


# ---- SGLang signatures ------------------------------------------------------------------------


def test_sgl_topk_softmax_writes_its_outputs():
    rng = np.random.default_rng(6)
    logits = ref.tie_free_logits(rng, 33, 128)
    bias = np.linspace(0, 0.2, 128).astype(np.float64)  # converted to float32
    w = np.full((33, 8), np.nan, np.float32)
    ids = np.full((33, 8), -7, np.int32)
    assert sgl.topk_softmax(w, ids, logits, True, 6.0, bias) is None
    ref_w, ref_ids, near = ref.route(
        logits, 8, renormalize=True, softcap=6.0, bias=bias.astype(np.float32)
    )
    _check(w, ids, ref_w, ref_ids, near)


def test_sgl_topk_sigmoid_with_fused_shared_expert():
    rng = np.random.default_rng(7)
    logits = ref.tie_free_logits(rng, 25, 64)
    bias = (rng.permutation(64) * 0.01).astype(np.float32)
    w = np.empty((25, 9), np.float32)
    ids = np.empty((25, 9), np.int32)
    sgl.topk_sigmoid(w, ids, logits, True, bias, 2.5, 1)
    ref_w, ref_ids, near = ref.route(
        logits,
        8,
        score_func="sigmoid",
        bias=bias,
        renormalize=True,
        routed_scaling_factor=2.5,
        num_shared=1,
    )
    _check(w, ids, ref_w, ref_ids, near)
    assert np.all(ids[:, 8] == 64)
    np.testing.assert_allclose(w[:, 8], 1 / 2.5, rtol=RTOL)


@pytest.mark.parametrize("shared,apply", [(0, False), (1, False), (1, True)])
def test_sgl_moe_fused_gate(shared, apply):
    rng = np.random.default_rng(8 + shared)
    logits = ref.tie_free_logits(rng, 30, 256)
    bias = (rng.permutation(256) * (0.5 / 256)).astype(np.float32)
    w, ids = sgl.moe_fused_gate(logits, bias, 8, 4, 8 + shared, shared, 2.5, apply)
    assert w.shape == (30, 8 + shared) and ids.dtype == np.int32
    ref_w, ref_ids, near = ref.route(
        logits,
        8,
        score_func="sigmoid",
        bias=bias,
        group_score="top2sum",
        num_groups=8,
        topk_groups=4,
        renormalize=True,
        routed_scaling_factor=2.5,
        apply_rsf_on_output=apply,
        num_shared=shared,
    )
    _check(w, ids, ref_w, ref_ids, near)
    if shared:
        np.testing.assert_allclose(w[:, 8], 1.0 if apply else 1 / 2.5, rtol=RTOL)


def test_sgl_moe_fused_gate_default_scaling_factor_means_one():
    rng = np.random.default_rng(9)
    logits = ref.tie_free_logits(rng, 4, 32)
    w, _ = sgl.moe_fused_gate(logits, np.zeros(32, np.float32), 4, 2, 4)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=RTOL)


@pytest.mark.parametrize(
    "config,ref_kwargs",
    [
        (  # Qwen3: softmax, renormalised
            dict(top_k=8, renormalize=True),
            dict(renormalize=True),
        ),
        (  # DeepSeek-V3: grouped sigmoid + bias, fused shared expert
            dict(
                top_k=9,
                use_grouped_topk=True,
                num_expert_group=8,
                topk_group=4,
                num_fused_shared_experts=1,
                routed_scaling_factor=2.5,
                renormalize=True,
            ),
            dict(
                score_func="sigmoid",
                group_score="top2sum",
                num_groups=8,
                topk_groups=4,
                renormalize=True,
                routed_scaling_factor=2.5,
                num_shared=1,
            ),
        ),
        (  # DeepSeek-V2: grouped softmax, group score = max, no bias
            dict(
                top_k=6, use_grouped_topk=True, num_expert_group=8, topk_group=3, renormalize=False
            ),
            dict(group_score="max", num_groups=8, topk_groups=3),
        ),
        (  # ungrouped sigmoid with the scoring_func field
            dict(top_k=4, scoring_func="sigmoid", renormalize=True),
            dict(score_func="sigmoid", renormalize=True),
        ),
    ],
)
def test_sgl_select_experts(config, ref_kwargs):
    rng = np.random.default_rng(10)
    experts = 256
    logits = ref.tie_free_logits(rng, 21, experts)
    bias = None
    if ref_kwargs.get("group_score") == "top2sum":
        bias = (rng.permutation(experts) * (0.5 / experts)).astype(np.float32)
    cfg = sgl.TopKConfig(correction_bias=bias, **config)
    hidden = np.zeros((21, 4), np.float16)
    out = sgl.select_experts(hidden, logits, cfg)
    w, ids, same_logits = out
    assert same_logits is logits and out.topk_ids is ids
    routed = config["top_k"] - config.get("num_fused_shared_experts", 0)
    ref_w, ref_ids, near = ref.route(logits, routed, bias=bias, **ref_kwargs)
    _check(w, ids, ref_w, ref_ids, near)


def test_sgl_select_experts_padding_and_static_placement():
    rng = np.random.default_rng(11)
    logits = ref.tie_free_logits(rng, 12, 16)

    class Info:  # SGLang's ExpertLocationDispatchInfo, 'static'
        ep_dispatch_algorithm = "static"
        partial_logical_to_rank_dispatch_physical_map = (np.arange(16) * 2 + 1).astype(np.int64)
        num_physical_experts = 32

    out = sgl.select_experts(
        None,
        logits,
        sgl.TopKConfig(top_k=2),
        num_token_non_padded=np.array(7, np.int32),
        expert_location_dispatch_info=Info(),
    )
    ref_w, ref_ids, _ = ref.route(logits[:7], 2, renormalize=True)
    np.testing.assert_array_equal(out.topk_ids[:7], ref_ids * 2 + 1)
    assert np.all(out.topk_ids[7:] == -1) and np.all(out.topk_weights[7:] == 0)


def test_sgl_select_experts_rejects_custom_routing_function():
    cfg = sgl.TopKConfig(top_k=2, custom_routing_function=lambda *a: a)
    with pytest.raises(NotImplementedError, match="custom_routing_function"):
        sgl.select_experts(None, np.zeros((2, 8), np.float32), cfg)
