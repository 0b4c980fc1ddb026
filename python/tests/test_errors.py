"""Errors surface as SwitchyardError subclasses whose message (the library's) names the argument,
its value and what was expected."""

import numpy as np
import pytest

import switchyard as sy


def _params(**kw):
    return sy.RoutingParams(num_experts=8, top_k=2, **kw)


def test_exception_hierarchy():
    assert issubclass(sy.InvalidArgumentError, sy.SwitchyardError)
    assert issubclass(sy.InvalidArgumentError, ValueError)
    assert issubclass(sy.UnsupportedError, NotImplementedError)
    assert issubclass(sy.CudaError, RuntimeError) and issubclass(sy.InternalError, RuntimeError)


def test_wrong_logits_dtype_names_the_argument():
    with pytest.raises(sy.InvalidArgumentError, match=r"logits\.dtype = float64"):
        sy.route(np.zeros((2, 8)), _params())


def test_wrong_output_shape_names_the_argument():
    from switchyard import _switchyard as C

    logits = np.zeros((4, 8), np.float32)
    with pytest.raises(
        sy.InvalidArgumentError, match=r"top_k_ids\.shape = \[4, 3\]: expected \[4, 2\]"
    ):
        C.route(_params(), logits, np.empty((4, 2), np.float32), np.empty((4, 3), np.int32))


def test_non_contiguous_output_names_the_argument():
    from switchyard import _switchyard as C

    logits = np.zeros((4, 8), np.float32)
    weights = np.empty((2, 4), np.float32).T  # [4, 2] with strides (1, 4)
    with pytest.raises(sy.InvalidArgumentError, match="top_k_weights"):
        C.route(_params(), logits, weights, np.empty((4, 2), np.int32))


def test_parameter_range_names_the_parameter():
    with pytest.raises(sy.InvalidArgumentError, match=r"top_k = 9"):
        sy.route(np.zeros((1, 8), np.float32), sy.RoutingParams(num_experts=8, top_k=9))
    with pytest.raises(sy.InvalidArgumentError, match="routed_scaling_factor"):
        sy.route(np.zeros((1, 8), np.float32), _params(routed_scaling_factor=-1.0))


def test_unknown_score_function_lists_the_known_ones():
    with pytest.raises(
        sy.InvalidArgumentError, match=r"score_func = softplus: expected one of softmax, sigmoid"
    ):
        _params(score_func="softplus")
    with pytest.raises(sy.InvalidArgumentError, match="activation = swish"):
        sy.ExpertsParams(num_experts=1, hidden_size=8, intermediate_size=8, activation="swish")


def test_bias_dtype_and_shape():
    logits = np.zeros((2, 8), np.float32)
    with pytest.raises(sy.InvalidArgumentError, match=r"bias\.shape = \[7\]"):
        sy.route(logits, _params(score_func="sigmoid"), bias=np.zeros(7, np.float32))


def test_too_many_dimensions():
    with pytest.raises(sy.InvalidArgumentError, match=r"top_k_ids\.ndim = 5"):
        sy.moe_align_block_size(np.zeros((1, 1, 1, 1, 2), np.int32), 8, 16)


def test_sum_reduce_wants_three_dimensions():
    with pytest.raises(sy.InvalidArgumentError, match=r"moe_sum_reduce: x\.shape = \[4, 8\]"):
        sy.moe_sum_reduce(np.zeros((4, 8), np.float32))
    with pytest.raises(
        sy.InvalidArgumentError, match=r"moe_sum_reduce: x\.shape = \[4, 0, 8\]: .* top_k >= 1"
    ):
        sy.moe_sum_reduce(np.zeros((4, 0, 8), np.float32))


def test_align_block_size_range():
    with pytest.raises(
        sy.InvalidArgumentError, match=r"block_size = 8: expected 16 <= block_size <= 256"
    ):
        sy.moe_align_block_size(np.zeros((2, 2), np.int32), 8, 8)


def test_experts_shapes():
    x = np.zeros((3, 16), np.float16)
    w13 = np.zeros((4, 16, 16), np.float16)
    w2 = np.zeros((4, 16, 8), np.float16)
    ids = np.zeros((3, 2), np.int32)
    with pytest.raises(sy.InvalidArgumentError, match=r"top_k_weights\.shape"):
        sy.fused_experts(x, w13, w2, np.zeros((3, 1), np.float32), ids)
    with pytest.raises(sy.InvalidArgumentError, match=r"x\.dtype = float32"):
        sy.fused_experts(x.astype(np.float32), w13, w2, np.zeros((3, 2), np.float32), ids)


def test_numpy_has_no_bfloat16_outputs():
    with pytest.raises(TypeError, match="bfloat16"):
        from switchyard import _arrays

        _arrays.empty(np.zeros(1), (2,), "bfloat16")


def test_unknown_framework_cannot_allocate():
    class Capsule:  # a DLPack producer that is neither numpy, torch nor CuPy
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

        shape = (2, 8)

    with pytest.raises(TypeError, match="caller-owned outputs"):
        sy.route(Capsule(np.zeros((2, 8), np.float32)), _params())


def test_other_dlpack_producers_work_with_caller_owned_outputs():
    from switchyard import _switchyard as C

    class Producer:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    logits = np.arange(16, dtype=np.float32).reshape(2, 8)
    w, ids = np.empty((2, 2), np.float32), np.empty((2, 2), np.int32)
    C.route(_params(), Producer(logits), w, ids)
    np.testing.assert_array_equal(ids, [[7, 6], [7, 6]])
