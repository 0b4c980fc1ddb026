"""The array-generic ops on CuPy arrays (skipped without CuPy, a CUDA device or a CUDA build of
switchyard): outputs are CuPy arrays, equal to the numpy (CPU) results bit for bit, and the work
goes on CuPy's current stream."""

import numpy as np
import pytest

cp = pytest.importorskip("cupy")

import switchyard as sy  # noqa: E402


def _cupy_sees_a_gpu():
    try:
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device
        return False


pytestmark = pytest.mark.skipif(
    not (sy.built_with_cuda() and sy.cuda_device_available() and _cupy_sees_a_gpu()),
    reason="needs CuPy, a CUDA device and a CUDA build of switchyard",
)


def _host(a):
    return cp.asnumpy(a) if isinstance(a, cp.ndarray) else np.asarray(a)


def _assert_same(cpu_tuple, gpu_tuple):
    for c, g in zip(cpu_tuple, gpu_tuple):
        assert isinstance(g, cp.ndarray), type(g)
        np.testing.assert_array_equal(_host(g), _host(c))


def _ids(rng, rows, top_k, experts):
    return np.stack([rng.permutation(experts)[:top_k] for _ in range(rows)]).astype(np.int32)


@pytest.mark.parametrize("rows", [1, 37, 600])
def test_route_equals_numpy(rows):
    rng = np.random.default_rng(rows)
    logits = rng.standard_normal((rows, 96)).astype(np.float32)
    params = sy.RoutingParams(num_experts=96, top_k=6, renormalize=True)
    _assert_same(sy.route(logits, params), sy.route(cp.asarray(logits), params))


def test_align_layout_permute_combine_sum_reduce_equal_numpy():
    rng = np.random.default_rng(7)
    rows, top_k, experts, hidden = 300, 8, 128, 72
    ids = _ids(rng, rows, top_k, experts)
    ids[::5, 3] = -1  # dropped slots
    d_ids = cp.asarray(ids)
    _assert_same(
        sy.moe_align_block_size(ids, experts, 64), sy.moe_align_block_size(d_ids, experts, 64)
    )
    cpu = sy.expert_layout(ids, experts, alignment=16)
    gpu = sy.expert_layout(d_ids, experts, alignment=16)
    _assert_same(cpu, gpu)

    x = rng.standard_normal((rows, hidden)).astype(np.float32)
    d_x = cp.asarray(x)
    y = sy.permute(x, cpu.dst_to_src, top_k, src_to_dst=cpu.src_to_dst)
    d_y = sy.permute(d_x, gpu.dst_to_src, top_k, src_to_dst=gpu.src_to_dst)
    _assert_same([y], [d_y])
    _assert_same([sy.permute(x, cpu.dst_to_src, top_k)], [sy.permute(d_x, gpu.dst_to_src, top_k)])

    w = rng.random((rows, top_k)).astype(np.float32)
    _assert_same(
        [sy.combine(y, cpu.src_to_dst, w, routed_scaling_factor=2.5)],
        [sy.combine(d_y, gpu.src_to_dst, cp.asarray(w), routed_scaling_factor=2.5)],
    )
    stacked = rng.standard_normal((rows, top_k, hidden)).astype(np.float32)
    _assert_same(
        [sy.moe_sum_reduce(stacked, routed_scaling_factor=0.5)],
        [sy.moe_sum_reduce(cp.asarray(stacked), routed_scaling_factor=0.5)],
    )


def test_work_goes_on_cupys_current_stream():
    # A long-running kernel on a non-default CuPy stream, then the op on the same stream: the
    # op's result must see the kernel's output (stream order), without any synchronisation.
    rng = np.random.default_rng(3)
    stacked = rng.standard_normal((64, 4, 256)).astype(np.float32)
    expect = sy.moe_sum_reduce(stacked)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        d = cp.zeros_like(cp.asarray(stacked))
        for _ in range(20):  # queued work ahead of the op on this stream
            d = d * 0.0
        d += cp.asarray(stacked)
        out = sy.moe_sum_reduce(d)
    stream.synchronize()
    np.testing.assert_array_equal(cp.asnumpy(out), expect)
