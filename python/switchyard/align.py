"""Alignment, expert-major layouts, permutation and combine over DLPack arrays.

Slots: routing column k of token t is slot t*K + k. Ids outside [0, num_experts) after the
optional expert_map (padding -1, non-local experts) are dropped, never bucketed; within each
expert, slots stay in ascending order (deterministic). The contract is include/switchyard/align.h.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import _arrays
from . import _switchyard as _C


class Alignment(NamedTuple):
    """moe_align_block_size outputs (SGLang / vLLM layout)."""

    sorted_token_ids: Any  # [M*K + E*(B-1)] int32: slots by expert, padded with M*K
    expert_ids: Any  # [ceil(len(sorted_token_ids) / B)] int32: expert of each block, -1 after
    num_tokens_post_pad: Any  # [1] int32: the padded total


def moe_align_block_size(
    topk_ids: Any,
    num_experts: int,
    block_size: int,
    *,
    expert_map: Any = None,
    workspace: Any = None,
    stream: int | None = None,
) -> Alignment:
    """Groups the slots of `topk_ids` [M, K] (int32/int64) by expert, each expert's segment
    padded to a multiple of `block_size` (16..256) with the sentinel M*K.

    Returns an Alignment of arrays allocated with the framework of `topk_ids`; entries past
    num_tokens_post_pad hold M*K. On CUDA the workspace (align_workspace_size bytes) is
    allocated on the device unless passed.
    """
    slots = topk_ids.shape[0] * topk_ids.shape[1] if len(topk_ids.shape) == 2 else 0
    with _arrays.on_device(topk_ids):
        sorted_ids = _arrays.empty(
            topk_ids, (_C.align_max_padded(slots, num_experts, block_size),), "int32"
        )
        expert_ids = _arrays.empty(
            topk_ids, (_C.align_max_blocks(slots, num_experts, block_size),), "int32"
        )
        post_pad = _arrays.empty(topk_ids, (1,), "int32")
        nbytes = _C.align_workspace_size(num_experts, block_size, slots)
        _C.moe_align_block_size(
            num_experts,
            block_size,
            topk_ids,
            sorted_ids,
            expert_ids,
            post_pad,
            expert_map=expert_map,
            workspace=_arrays.gpu_workspace(topk_ids, nbytes, workspace),
            stream=_arrays.current_stream(topk_ids, stream),
        )
    return Alignment(sorted_ids, expert_ids, post_pad)


class ExpertLayout(NamedTuple):
    """expert_layout outputs: where each slot goes in the expert-major buffer."""

    expert_counts: Any  # [E] int32: valid slots per expert (masked layout: masked_m)
    expert_offsets: Any  # [E+1] int64: first row of each expert; [E] = rows in use
    src_to_dst: Any  # [M*K] int64: layout row of each slot, -1 when dropped
    dst_to_src: Any  # [layout_max_rows] int64: slot of each row, -1 for padding rows
    overflow: Any  # [1] int64: slots dropped by a full masked expert


def expert_layout(
    topk_ids: Any,
    num_experts: int,
    *,
    alignment: int = 1,
    max_rows_per_expert: int = 0,
    expert_map: Any = None,
    workspace: Any = None,
    stream: int | None = None,
) -> ExpertLayout:
    """The contiguous layout (each expert's rows rounded up to `alignment`, e.g. 128 for
    DeepGEMM) or, with max_rows_per_expert = max_m > 0, the masked layout [E, max_m, H]."""
    slots = topk_ids.shape[0] * topk_ids.shape[1] if len(topk_ids.shape) == 2 else 0
    rows = _C.layout_max_rows(num_experts, alignment, max_rows_per_expert, slots)
    with _arrays.on_device(topk_ids):
        out = ExpertLayout(
            _arrays.empty(topk_ids, (num_experts,), "int32"),
            _arrays.empty(topk_ids, (num_experts + 1,), "int64"),
            _arrays.empty(topk_ids, (slots,), "int64"),
            _arrays.empty(topk_ids, (rows,), "int64"),
            _arrays.empty(topk_ids, (1,), "int64"),
        )
        nbytes = _C.expert_layout_workspace_size(num_experts, alignment, max_rows_per_expert, slots)
        _C.expert_layout(
            num_experts,
            alignment,
            max_rows_per_expert,
            topk_ids,
            out.expert_counts,
            out.expert_offsets,
            out.src_to_dst,
            out.dst_to_src,
            expert_map=expert_map,
            overflow=out.overflow,
            workspace=_arrays.gpu_workspace(topk_ids, nbytes, workspace),
            stream=_arrays.current_stream(topk_ids, stream),
        )
    return out


def permute(
    x: Any, dst_to_src: Any, top_k: int, *, src_to_dst: Any = None, stream: int | None = None
) -> Any:
    """out[r] = x[dst_to_src[r] // top_k] for every layout row r (rows with no slot are zero).
    x [M, H] float32/bfloat16/float16, dst_to_src [R] int64 (from expert_layout). src_to_dst
    [M*K] int64, optional: the inverse map (expert_layout gives both); with it the CUDA op reads
    each x row once (token-major), which is much faster at prefill sizes; the CPU checks that the
    two maps are inverse."""
    with _arrays.on_device(x):
        out = _arrays.empty(x, (dst_to_src.shape[0], x.shape[1]), _arrays.dtype_name(x))
        _C.permute(
            x,
            dst_to_src,
            top_k,
            out,
            src_to_dst=src_to_dst,
            stream=_arrays.current_stream(x, stream),
        )
    return out


def combine(
    y: Any,
    src_to_dst: Any,
    topk_weights: Any,
    *,
    routed_scaling_factor: float = 1.0,
    top_k: int | None = None,
    stream: int | None = None,
) -> Any:
    """out[t] = rsf * sum_k w[t, k] * y[src_to_dst[t*K + k]], accumulated in float32 with k
    ascending (deterministic); dropped slots (-1) add nothing. y [R, H], topk_weights [M, K]
    float32; out [M, H] has y's dtype.

    Either may be None: src_to_dst None is the identity map (slot t*K + k reads row t*K + k, so y
    has exactly M*K rows); topk_weights None means every weight is 1, and K comes from `top_k`
    (M from the map's or y's rows over K). Neither allocates anything."""
    k = 0 if top_k is None else int(top_k)
    if topk_weights is not None:
        rows = topk_weights.shape[0]
    else:
        if k < 1:
            raise _C.InvalidArgumentError(
                f"combine: top_k = {top_k}: expected >= 1 when topk_weights is None"
            )
        rows = (src_to_dst.shape[0] if src_to_dst is not None else y.shape[0]) // k
    with _arrays.on_device(y):
        out = _arrays.empty(y, (rows, y.shape[1]), _arrays.dtype_name(y))
        _C.combine(
            routed_scaling_factor,
            y,
            src_to_dst,
            topk_weights,
            out,
            top_k=k,
            stream=_arrays.current_stream(y, stream),
        )
    return out


def moe_sum_reduce(
    x: Any,
    *,
    routed_scaling_factor: float = 1.0,
    out: Any = None,
    stream: int | None = None,
) -> Any:
    """out[t] = rsf * sum_k x[t, k] for x [M, K, H] (the expert outputs, already weighted),
    accumulated in float32 with k ascending. This is combine() with no weights (1) and no slot
    map (the identity): nothing is allocated but `out` when it is not given (and a contiguous
    copy of x when x is not contiguous)."""
    if len(x.shape) != 3 or x.shape[1] < 1:
        raise _C.InvalidArgumentError(
            f"moe_sum_reduce: x.shape = {list(x.shape)}: expected [num_tokens, top_k, hidden] "
            "with top_k >= 1"
        )
    rows, top_k, hidden = (int(d) for d in x.shape)
    with _arrays.on_device(x):
        if out is None:
            out = _arrays.empty(x, (rows, hidden), _arrays.dtype_name(x))
        _C.combine(
            routed_scaling_factor,
            _arrays.contiguous(x).reshape(rows * top_k, hidden),
            None,
            None,
            out,
            top_k=top_k,
            stream=_arrays.current_stream(x, stream),
        )
    return out
