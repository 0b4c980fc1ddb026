"""Routing (top-k gating) over DLPack arrays: logits [M, E] -> weights [M, K+S], ids [M, K+S].

What is computed, exactly (score functions, grouping, ties, NaN, shared experts, placement,
padding), is the C++ contract in include/switchyard/routing.h; RoutingParams holds the
configuration. The CPU and CUDA backends return bitwise identical results.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import _arrays
from . import _switchyard as _C
from ._switchyard import RoutingParams


def route(
    logits: Any,
    params: RoutingParams,
    *,
    bias: Any = None,
    num_tokens_non_padded: Any = None,
    placement: Any = None,
    replica_counts: Any = None,
    num_physical_experts: int = 0,
    expert_map: Any = None,
    num_local_experts: int = 0,
    ids_dtype: str = "int32",
    stream: int | None = None,
) -> tuple[Any, Any]:
    """Routes `logits` [M, E] (float32, bfloat16 or float16; column stride 1).

    Args:
        logits: router logits, on the CPU or a GPU (the op runs there).
        params: the router (score function, grouping, top-k, shared experts, scaling).
        bias: optional [E] float32 correction bias ("e_score_correction_bias").
        num_tokens_non_padded: optional int32 scalar on the op's device; rows >= it are padding
            (ids -1, weights 0).
        placement, replica_counts, num_physical_experts: optional EPLB placement: a static map
            [E] int32, or a replica table [E, R] int32 with counts [E] int32.
        expert_map, num_local_experts: optional expert-parallel view [P] int32 -> local id or -1.
        ids_dtype: 'int32' or 'int64'.
        stream: CUDA stream as an integer; default: the framework's current stream.

    Returns:
        (topk_weights [M, K+S] float32, topk_ids [M, K+S] ids_dtype), allocated with the
        framework of `logits`.

    Raises:
        InvalidArgumentError: naming the argument (shape, dtype, device, parameter range).
    """
    rows = logits.shape[0]
    cols = params.top_k + params.num_shared_experts
    with _arrays.on_device(logits):
        weights = _arrays.empty(logits, (rows, cols), "float32")
        ids = _arrays.empty(logits, (rows, cols), ids_dtype)
        _C.route(
            params,
            logits,
            weights,
            ids,
            bias=bias,
            num_tokens_non_padded=num_tokens_non_padded,
            placement=placement,
            replica_counts=replica_counts,
            num_physical_experts=num_physical_experts,
            expert_map=expert_map,
            num_local_experts=num_local_experts,
            stream=_arrays.current_stream(logits, stream),
        )
    return weights, ids


class RouteAndAlign(NamedTuple):
    """Outputs of route_and_align: routing, then moe_align_block_size of its ids."""

    topk_weights: Any  # [M, K+S] float32
    topk_ids: Any  # [M, K+S] int32
    sorted_token_ids: Any  # [align_max_padded] int32
    expert_ids: Any  # [align_max_blocks] int32
    num_tokens_post_pad: Any  # [1] int32


def route_and_align(
    logits: Any,
    params: RoutingParams,
    block_size: int,
    *,
    bias: Any = None,
    num_tokens_non_padded: Any = None,
    workspace: Any = None,
    stream: int | None = None,
) -> RouteAndAlign:
    """route() then moe_align_block_size() of all K+S id columns, in one call (two launches on
    CUDA, no host synchronisation). Alignment buckets the ids into params.num_experts experts:
    fused shared expert ids (>= E) are dropped there."""
    rows = logits.shape[0]
    cols = params.top_k + params.num_shared_experts
    slots = rows * cols
    with _arrays.on_device(logits):
        weights = _arrays.empty(logits, (rows, cols), "float32")
        ids = _arrays.empty(logits, (rows, cols), "int32")
        sorted_ids = _arrays.empty(
            logits, (_C.align_max_padded(slots, params.num_experts, block_size),), "int32"
        )
        expert_ids = _arrays.empty(
            logits, (_C.align_max_blocks(slots, params.num_experts, block_size),), "int32"
        )
        post_pad = _arrays.empty(logits, (1,), "int32")
        nbytes = _C.route_and_align_workspace_size(params, block_size, rows)
        _C.route_and_align(
            params,
            block_size,
            logits,
            weights,
            ids,
            sorted_ids,
            expert_ids,
            post_pad,
            bias=bias,
            num_tokens_non_padded=num_tokens_non_padded,
            workspace=_arrays.gpu_workspace(logits, nbytes, workspace),
            stream=_arrays.current_stream(logits, stream),
        )
    return RouteAndAlign(weights, ids, sorted_ids, expert_ids, post_pad)
