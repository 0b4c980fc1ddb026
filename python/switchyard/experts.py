"""The fused MoE expert forward over DLPack arrays (include/switchyard/experts.h).

    for every token t and routed column k with a valid expert e (after expert_map):
      h = act(w13[e] @ x[t] (+ b13[e]))   rounded once to x's dtype
      y = w2[e] @ h (+ b2[e])
      out[t] = rsf * sum_k w[t, k] * y     float32 accumulation, k ascending

Activations: 'silu' (silu(g) * u; w13 rows 0..I-1 gate, I..2I-1 up), 'gelu' (erf form),
'gelu_tanh', 'swiglu_oai' (gpt-oss: interleaved rows, clamp to +-limit, biases) and 'relu2'
(non-gated, w13 [E, I, H]). Dtypes: bfloat16 or float16 (numpy: float16).

w13_interleaved=True takes w13 (and b13) with gate/up rows interleaved (2i gate, 2i+1 up), as
interleave_w13 packs them once at load time; on CUDA the grouped-GEMM path then applies the
activation in GEMM1's epilogue (no float32 intermediate, one kernel fewer).
"""

from __future__ import annotations

from typing import Any

from . import _arrays
from . import _switchyard as _C
from ._switchyard import ExpertsParams


def experts_params(
    x: Any,
    w13: Any,
    w2: Any,
    *,
    activation: str = "silu",
    apply_router_weight_on_input: bool = False,
    routed_scaling_factor: float = 1.0,
    swiglu_alpha: float = 1.702,
    swiglu_limit: float = 7.0,
    w13_interleaved: bool = False,
) -> ExpertsParams:
    """ExpertsParams from the shapes: E = w13.shape[0], H = x.shape[1], I = w2.shape[2]."""
    return ExpertsParams(
        num_experts=int(w13.shape[0]),
        hidden_size=int(x.shape[1]),
        intermediate_size=int(w2.shape[2]),
        activation=activation,
        apply_router_weight_on_input=apply_router_weight_on_input,
        routed_scaling_factor=routed_scaling_factor,
        swiglu_alpha=swiglu_alpha,
        swiglu_limit=swiglu_limit,
        w13_interleaved=w13_interleaved,
    )


def interleave_w13(w13: Any, *, out: Any = None, stream: int | None = None) -> Any:
    """w13 [E, 2I, H] (or b13 [E, 2I]) with gate rows 0..I-1 and up rows I..2I-1, packed into
    interleaved rows (2i gate i, 2i+1 up i) for fused_experts(..., w13_interleaved=True): a
    load-time step. `out`: optional destination (same shape and dtype, not overlapping w13)."""
    with _arrays.on_device(w13):
        if out is None:
            out = _arrays.empty(w13, tuple(w13.shape), _arrays.dtype_name(w13))
        _C.interleave_w13(w13, out, stream=_arrays.current_stream(w13, stream))
    return out


def fused_experts(
    x: Any,
    w13: Any,
    w2: Any,
    topk_weights: Any,
    topk_ids: Any,
    *,
    activation: str = "silu",
    b13: Any = None,
    b2: Any = None,
    apply_router_weight_on_input: bool = False,
    routed_scaling_factor: float = 1.0,
    swiglu_alpha: float = 1.702,
    swiglu_limit: float = 7.0,
    w13_interleaved: bool = False,
    expert_map: Any = None,
    out: Any = None,
    workspace: Any = None,
    stream: int | None = None,
) -> Any:
    """The MoE layer's routed experts and combine in one call.

    Args:
        x: [M, H] bfloat16/float16 hidden states (contiguous).
        w13: [E, 2I, H] gate and up projections ('relu2': [E, I, H]), x's dtype, contiguous.
        w2: [E, H, I] down projections.
        topk_weights: [M, K] float32; topk_ids: [M, K] int32/int64 (ids outside [0, E) after
            expert_map are dropped).
        activation: 'silu', 'gelu', 'gelu_tanh', 'swiglu_oai' or 'relu2'.
        b13, b2: optional biases [E, 2I] and [E, H] (float32 or x's dtype).
        apply_router_weight_on_input: Llama-4: scale x by the weight instead (K == 1).
        routed_scaling_factor: rsf multiplying the combined output.
        swiglu_alpha, swiglu_limit: 'swiglu_oai' constants (gpt-oss: 1.702, 7.0).
        w13_interleaved: w13 / b13 rows interleaved (interleave_w13); 'swiglu_oai' always is.
        expert_map: optional [E_global] int32: id -> local expert or -1.
        out: optional [M, H] output (x's dtype); allocated with x's framework when None.
        workspace: CUDA: fused_experts_workspace_size bytes; allocated on the device if None.
        stream: CUDA stream as an integer; default: the framework's current stream.

    Returns:
        out [M, H] in x's dtype.
    """
    params = experts_params(
        x,
        w13,
        w2,
        activation=activation,
        apply_router_weight_on_input=apply_router_weight_on_input,
        routed_scaling_factor=routed_scaling_factor,
        swiglu_alpha=swiglu_alpha,
        swiglu_limit=swiglu_limit,
        w13_interleaved=w13_interleaved,
    )
    with _arrays.on_device(x):
        if out is None:
            out = _arrays.empty(x, (x.shape[0], x.shape[1]), _arrays.dtype_name(x))
        top_k = int(topk_ids.shape[1]) if len(topk_ids.shape) == 2 else 0
        nbytes = _C.fused_experts_workspace_size(params, int(x.shape[0]), top_k)
        _C.fused_experts(
            params,
            x,
            w13,
            w2,
            topk_ids,
            topk_weights,
            out,
            b13=b13,
            b2=b2,
            expert_map=expert_map,
            workspace=_arrays.gpu_workspace(x, nbytes, workspace),
            stream=_arrays.current_stream(x, stream),
        )
    return out
