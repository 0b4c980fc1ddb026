"""The fused expert forward on the numpy path (float16) against a float64 per-expert loop that
rounds the activation to float16 as the contract does. Error metric: |out - ref| <= 2^-9 |ref|
+ 2^-9 max|ref| (float16 output rounding plus float32 accumulation order)."""

import numpy as np
import pytest

import reference as ref
import switchyard as sy
from switchyard import sglang_compat as sgl


def _problem(seed, rows, experts, top_k, hidden, inter, rows13=None):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (rows, hidden)).astype(np.float16)
    w13 = rng.uniform(-1, 1, (experts, rows13 or 2 * inter, hidden)) / np.sqrt(hidden)
    w2 = rng.uniform(-1, 1, (experts, hidden, inter)) / np.sqrt(inter)
    ids = np.zeros((rows, top_k), np.int32)
    for t in range(rows):
        ids[t] = rng.permutation(experts)[:top_k]
    weights = rng.uniform(0.1, 1.0, (rows, top_k)).astype(np.float32)
    return x, w13.astype(np.float16), w2.astype(np.float16), weights, ids, rng


def _close(out, expect):
    out = out.astype(np.float64)
    scale = np.abs(expect).max() if expect.size else 1.0
    bound = 2.0**-9 * np.abs(expect) + 2.0**-9 * scale
    assert np.all(np.abs(out - expect) <= bound), np.abs(out - expect).max()


@pytest.mark.parametrize("activation", ["silu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("rows,experts,top_k,hidden,inter", [(1, 4, 2, 16, 8), (33, 8, 2, 24, 40)])
def test_gated_activations(activation, rows, experts, top_k, hidden, inter):
    x, w13, w2, weights, ids, _ = _problem(7, rows, experts, top_k, hidden, inter)
    out = sy.fused_experts(
        x, w13, w2, weights, ids, activation=activation, routed_scaling_factor=1.5
    )
    assert out.dtype == np.float16 and out.shape == x.shape
    _close(
        out,
        ref.fused_experts(
            x, w13, w2, weights, ids, activation=activation, routed_scaling_factor=1.5
        ),
    )


def test_swiglu_oai_with_biases():
    x, w13, w2, weights, ids, rng = _problem(8, 20, 8, 4, 16, 16)
    x = (x * 8).astype(np.float16)  # large enough that the clamp at +-limit acts
    b13 = rng.uniform(-1, 1, (8, 32)).astype(np.float32)
    b2 = rng.uniform(-1, 1, (8, 16)).astype(np.float16)
    kw = dict(activation="swiglu_oai", b13=b13, b2=b2, swiglu_alpha=1.702, swiglu_limit=2.0)
    out = sy.fused_experts(x, w13, w2, weights, ids, **kw)
    _close(out, ref.fused_experts(x, w13, w2, weights, ids, **kw))


def test_interleaved_w13_gives_the_same_bits():
    x, w13, w2, weights, ids, rng = _problem(11, 24, 6, 2, 16, 24)
    b13 = rng.uniform(-1, 1, (6, 48)).astype(np.float32)
    halves = sy.fused_experts(x, w13, w2, weights, ids, b13=b13)
    packed, packed_b13 = sy.interleave_w13(w13), sy.interleave_w13(b13)
    assert np.array_equal(packed[:, 0::2], w13[:, :24])
    assert np.array_equal(packed[:, 1::2], w13[:, 24:])
    inter = sy.fused_experts(x, packed, w2, weights, ids, b13=packed_b13, w13_interleaved=True)
    assert np.array_equal(inter, halves)
    assert sy.experts_params(x, w13, w2, w13_interleaved=True).w13_interleaved


def test_interleave_w13_rejects_odd_rows():
    with pytest.raises(sy.InvalidArgumentError, match=r"src.shape\[1\] = 3: expected even"):
        sy.interleave_w13(np.zeros((2, 3, 8), np.float16))


def test_relu2_not_gated():
    x, w13, w2, weights, ids, _ = _problem(9, 12, 6, 2, 16, 24, rows13=24)
    out = sy.fused_experts(x, w13, w2, weights, ids, activation="relu2")
    _close(out, ref.fused_experts(x, w13, w2, weights, ids, activation="relu2"))


def test_router_weight_on_input_top1():
    x, w13, w2, weights, ids, _ = _problem(10, 15, 4, 1, 16, 8)
    out = sy.fused_experts(x, w13, w2, weights, ids, apply_router_weight_on_input=True)
    _close(out, ref.fused_experts(x, w13, w2, weights, ids, apply_router_weight_on_input=True))


def test_expert_map_and_dropped_ids_give_zero_rows():
    x, w13, w2, weights, ids, _ = _problem(11, 10, 4, 2, 16, 8)
    global_ids = ids + 4  # global experts 4..7 are this rank's 0..3
    global_ids[0] = [0, 1]  # not local: token 0 gets zeros
    expert_map = np.array([-1, -1, -1, -1, 0, 1, 2, 3], np.int32)
    out = sy.fused_experts(x, w13, w2, weights, global_ids, expert_map=expert_map)
    assert np.all(out[0] == 0)
    _close(out, ref.fused_experts(x, w13, w2, weights, global_ids, expert_map=expert_map))


def test_zero_tokens():
    x, w13, w2, weights, ids, _ = _problem(12, 0, 4, 2, 16, 8)
    assert sy.fused_experts(x, w13, w2, weights, ids).shape == (0, 16)


def test_sgl_fused_experts_runner_config_and_inplace():
    x, w13, w2, weights, ids, _ = _problem(13, 9, 4, 2, 16, 8)
    expect = ref.fused_experts(x, w13, w2, weights, ids, routed_scaling_factor=2.0)
    cfg = sgl.MoeRunnerConfig(inplace=False, routed_scaling_factor=2.0)
    out = sgl.fused_experts(x, w13, w2, (weights, ids, None), cfg)
    _close(out, expect)
    hidden = x.copy()
    returned = sgl.fused_experts(
        hidden, w13, w2, (weights, ids), sgl.MoeRunnerConfig(routed_scaling_factor=2.0)
    )
    assert returned is hidden
    np.testing.assert_array_equal(hidden, out)


def test_sgl_fused_experts_gpt_oss_swiglu_from_gemm1_alpha():
    x, w13, w2, weights, ids, _ = _problem(14, 9, 4, 2, 16, 8)
    cfg = sgl.MoeRunnerConfig(inplace=False, gemm1_alpha=1.702, gemm1_clamp_limit=7.0)
    out = sgl.fused_experts(x, w13, w2, (weights, ids), cfg)
    _close(out, ref.fused_experts(x, w13, w2, weights, ids, activation="swiglu_oai"))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(use_fp8_w8a8=True), "use_fp8_w8a8"),
        (dict(w1_scale=np.ones(1)), "w1_scale"),
        (dict(block_shape=[128, 128]), "block_shape"),
    ],
)
def test_sgl_fused_experts_rejects_quantization(kwargs, match):
    x, w13, w2, weights, ids, _ = _problem(15, 2, 4, 2, 16, 8)
    with pytest.raises(NotImplementedError, match=match):
        sgl.fused_experts(x, w13, w2, (weights, ids), None, **kwargs)


def test_sgl_fused_experts_rejects_no_combine_and_unknown_activation():
    x, w13, w2, weights, ids, _ = _problem(16, 2, 4, 2, 16, 8)
    with pytest.raises(NotImplementedError, match="no_combine"):
        sgl.fused_experts(x, w13, w2, (weights, ids), sgl.MoeRunnerConfig(no_combine=True))
    with pytest.raises(NotImplementedError, match="activation = quick_gelu"):
        sgl.fused_experts(x, w13, w2, (weights, ids), sgl.MoeRunnerConfig(activation="quick_gelu"))
