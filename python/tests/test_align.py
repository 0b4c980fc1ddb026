"""Alignment, layouts, permute, combine and sum-reduce on the numpy path: invariants of the
outputs (alignment), exact equality with numpy (layouts, permute) and the float32 combine."""

import numpy as np
import pytest

import reference as ref
import switchyard as sy
from switchyard import sglang_compat as sgl


def _ids(rng, rows, top_k, experts, hot=None):
    """K distinct experts per token; with `hot`, expert `hot` in column 0 of every row (a
    skewed load: one expert takes every token)."""
    ids = np.zeros((rows, top_k), np.int32)
    for t in range(rows):
        if hot is None:
            ids[t] = rng.permutation(experts)[:top_k]
        else:
            others = rng.permutation(np.delete(np.arange(experts), hot))[: top_k - 1]
            ids[t] = np.concatenate([[hot], others])
    return ids


@pytest.mark.parametrize(
    "rows,top_k,experts,block",
    [(1, 2, 8, 16), (37, 8, 128, 64), (300, 8, 256, 64), (64, 6, 160, 128), (0, 2, 8, 16)],
)
def test_moe_align_block_size_invariants(rows, top_k, experts, block):
    rng = np.random.default_rng(rows + top_k + experts)
    ids = _ids(rng, rows, top_k, experts)
    out = sy.moe_align_block_size(ids, experts, block)
    assert out.sorted_token_ids.shape == (sy.align_max_padded(rows * top_k, experts, block),)
    ref.check_alignment(ids, experts, block, *out)


def test_moe_align_drops_out_of_range_ids_and_takes_int64():
    rng = np.random.default_rng(1)
    ids = _ids(rng, 40, 4, 32).astype(np.int64)
    ids[::3, 1] = -1  # padding / filtered experts
    ids[::5, 2] = 40  # past E
    out = sy.moe_align_block_size(ids, 32, 16)
    kept = np.where((ids >= 0) & (ids < 32), ids, -1)
    ref.check_alignment(kept, 32, 16, *out)


def test_moe_align_one_hot_expert():
    rng = np.random.default_rng(2)
    ids = _ids(rng, 200, 8, 64, hot=5)
    out = sy.moe_align_block_size(ids, 64, 64)
    ref.check_alignment(ids, 64, 64, *out)


def test_sgl_moe_align_block_size_out_parameters():
    rng = np.random.default_rng(3)
    rows, top_k, experts, block = 50, 8, 64, 32
    ids = _ids(rng, rows, top_k, experts)
    # SGLang sizes its buffers for num_experts + 1 and passes num_experts + 1.
    padded = sy.align_max_padded(rows * top_k, experts + 1, block)
    sorted_ids = np.full(padded, -5, np.int32)
    expert_ids = np.full(-(-padded // block), -5, np.int32)
    post_pad = np.zeros(1, np.int32)
    cumsum = np.zeros(experts + 2, np.int32)
    assert (
        sgl.moe_align_block_size(
            ids, experts + 1, block, sorted_ids, expert_ids, post_pad, cumsum, True
        )
        is None
    )
    ref.check_alignment(ids, experts, block, sorted_ids, expert_ids, post_pad)


@pytest.mark.parametrize("alignment", [1, 16, 128])
def test_contiguous_layout_permute_combine_round_trip(alignment):
    rng = np.random.default_rng(alignment)
    rows, top_k, experts, hidden = 45, 4, 16, 24
    ids = _ids(rng, rows, top_k, experts)
    ids[0, 3] = -1  # a dropped slot
    layout = sy.expert_layout(ids, experts, alignment=alignment)
    flat = ids.reshape(-1)
    counts = np.bincount(flat[flat >= 0], minlength=experts)
    np.testing.assert_array_equal(layout.expert_counts, counts)
    padded = -(-counts // alignment) * alignment
    np.testing.assert_array_equal(layout.expert_offsets, np.concatenate([[0], np.cumsum(padded)]))
    assert layout.src_to_dst[3] == -1
    valid = np.flatnonzero(flat >= 0)
    assert np.all(layout.dst_to_src[layout.src_to_dst[valid]] == valid)

    x = rng.standard_normal((rows, hidden)).astype(np.float32)
    permuted = sy.permute(x, layout.dst_to_src, top_k)
    src = layout.dst_to_src
    expect = np.where((src >= 0)[:, None], x[np.maximum(src, 0) // top_k], 0)
    np.testing.assert_array_equal(permuted, expect)
    # With the inverse map (the CUDA op's token-major path): the same rows.
    np.testing.assert_array_equal(
        sy.permute(x, layout.dst_to_src, top_k, src_to_dst=layout.src_to_dst), expect
    )

    weights = rng.uniform(0.1, 1, (rows, top_k)).astype(np.float32)
    out = sy.combine(permuted, layout.src_to_dst, weights, routed_scaling_factor=2.0)
    acc = np.zeros((rows, hidden), np.float32)
    for k in range(top_k):  # the library's order: k ascending, float32, then * rsf
        d = layout.src_to_dst.reshape(rows, top_k)[:, k]
        acc = acc + np.where(
            (d >= 0)[:, None], weights[:, k : k + 1] * permuted[np.maximum(d, 0)], 0
        )
    np.testing.assert_allclose(out, np.float32(2.0) * acc, rtol=1e-6, atol=1e-6)


def test_permute_rejects_a_map_that_is_not_the_inverse():
    ids = np.array([[0, 1], [1, 0]], np.int32)
    layout = sy.expert_layout(ids, 2)
    x = np.ones((2, 8), np.float32)
    bad = layout.src_to_dst.copy()
    bad[[0, 1]] = bad[[1, 0]]
    with pytest.raises(sy.InvalidArgumentError, match="src_to_dst"):
        sy.permute(x, layout.dst_to_src, 2, src_to_dst=bad)


def test_masked_layout_counts_overflow():
    ids = np.array([[0, 1], [0, 2], [0, 1], [3, 0]], np.int32)  # expert 0 gets 4 slots
    layout = sy.expert_layout(ids, 4, max_rows_per_expert=2)
    np.testing.assert_array_equal(layout.expert_counts, [2, 2, 1, 1])
    assert int(layout.overflow[0]) == 2
    assert layout.dst_to_src.shape == (8,)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("top_k", [1, 2, 8, 9])
@pytest.mark.parametrize("rows", [17, 1, 0])
def test_moe_sum_reduce(dtype, top_k, rows):
    rng = np.random.default_rng(top_k)
    x = rng.standard_normal((rows, top_k, 40)).astype(dtype)
    out = sy.moe_sum_reduce(x, routed_scaling_factor=2.5)
    np.testing.assert_array_equal(out, ref.sum_reduce(x, 2.5))
    given = np.empty((rows, 40), dtype)
    sgl.moe_sum_reduce(x, given, 2.5)
    np.testing.assert_array_equal(given, out)


def test_moe_sum_reduce_equals_combine_with_unit_weights_and_the_identity_map():
    """The bytes of the explicit form (what moe_sum_reduce computed before the weights and the map
    became optional), for a non-contiguous x too."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 23, 6)).astype(np.float16).transpose(0, 2, 1)  # [23, 6, 40]
    rows, top_k, hidden = x.shape
    explicit = sy.combine(
        np.ascontiguousarray(x).reshape(rows * top_k, hidden),
        np.arange(rows * top_k, dtype=np.int64),
        np.ones((rows, top_k), np.float32),
        routed_scaling_factor=-0.5,
    )
    out = sy.moe_sum_reduce(x, routed_scaling_factor=-0.5)
    np.testing.assert_array_equal(out.view(np.uint16), explicit.view(np.uint16))
    np.testing.assert_array_equal(out, ref.sum_reduce(x, -0.5))


def test_moe_sum_reduce_allocates_nothing_with_an_output(monkeypatch):
    from switchyard import _arrays

    def no_allocation(*args, **kwargs):
        raise AssertionError("moe_sum_reduce allocated an array")

    x = np.random.default_rng(6).standard_normal((3, 8, 64)).astype(np.float32)
    out = np.empty((3, 64), np.float32)
    monkeypatch.setattr(_arrays, "empty", no_allocation)
    monkeypatch.setattr(_arrays, "fill", no_allocation)
    sgl.moe_sum_reduce(x, out, 1.5)
    np.testing.assert_array_equal(out, ref.sum_reduce(x, 1.5))


def _combine_reference(y, src_to_dst, weights, rows, top_k, rsf):
    """float32, k ascending, weight 1 / identity map where None (the library's order)."""
    acc = np.zeros((rows, y.shape[1]), np.float32)
    for t in range(rows):
        for k in range(top_k):
            s = t * top_k + k
            r = s if src_to_dst is None else src_to_dst[s]
            if r < 0:
                continue
            w = np.float32(1) if weights is None else weights[t, k]
            acc[t] = acc[t] + w * y[r].astype(np.float32)  # fma: the product is exact here
    return (np.float32(rsf) * acc).astype(y.dtype)


@pytest.mark.parametrize("with_map", [False, True])
@pytest.mark.parametrize("with_weights", [False, True])
def test_combine_without_weights_or_map(with_map, with_weights):
    rng = np.random.default_rng(7)
    rows, top_k, hidden = 13, 3, 16
    # Weights of 8 bits times float16 values: every product is exact in float32, so numpy's
    # separate multiply and add give the library's fused multiply-add bits.
    y = rng.standard_normal((rows * top_k + (4 if with_map else 0), hidden)).astype(np.float16)
    weights = (rng.integers(1, 256, (rows, top_k)) / 256).astype(np.float32)
    src_to_dst = rng.integers(-1, y.shape[0], rows * top_k).astype(np.int64)
    out = sy.combine(
        y,
        src_to_dst if with_map else None,
        weights if with_weights else None,
        routed_scaling_factor=2.0,
        top_k=top_k,
    )
    expect = _combine_reference(
        y,
        src_to_dst if with_map else None,
        weights if with_weights else None,
        rows,
        top_k,
        2.0,
    )
    np.testing.assert_array_equal(out, expect)


def test_combine_optional_argument_errors():
    from switchyard import _switchyard as C

    y = np.zeros((8, 4), np.float32)
    with pytest.raises(sy.InvalidArgumentError, match=r"combine: top_k = None: expected >= 1"):
        sy.combine(y, None, None)
    with pytest.raises(
        sy.InvalidArgumentError,
        match=r"combine_cpu: top_k = 0: expected >= 1 when top_k_weights is absent",
    ):
        C.combine(1.0, y, None, None, np.empty((2, 4), np.float32))
    with pytest.raises(
        sy.InvalidArgumentError, match=r"combine_cpu: y\.shape = \[8, 4\]: expected \[6, 4\]"
    ):
        C.combine(1.0, y, None, None, np.empty((2, 4), np.float32), top_k=3)
    with pytest.raises(
        sy.InvalidArgumentError, match=r"top_k = 3: expected 0 or top_k_weights\.shape\[1\] = 4"
    ):
        sy.combine(y, None, np.ones((2, 4), np.float32), top_k=3)
