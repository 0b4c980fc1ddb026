"""The torch.library ops (namespace ``switchyard``) and their fake (meta) implementations.

Each op runs the array-generic implementation (switchyard.sglang_compat, align, experts) on its
tensors: CPU tensors on the CPU backend, CUDA tensors on torch's current stream of their device.
Workspaces are allocated with torch.empty on the tensor's device (the caching allocator; inside
a CUDA graph capture, the graph's pool). The fakes give torch.compile every output's shape from
the input shapes alone (no data-dependent shapes), so the ops trace with fullgraph=True.
Out-parameters are declared in mutates_args, as in sgl_kernel's schemas.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import align as _align
from .. import experts as _experts
from .. import sglang_compat as _sgl

Tensor = torch.Tensor


def _plain(t: Optional[Tensor]) -> Optional[Tensor]:
    """DLPack refuses tensors that require grad; the ops compute no gradients."""
    return t.detach() if t is not None and t.requires_grad else t


# ---- routing --------------------------------------------------------------------------------


@torch.library.custom_op("switchyard::topk_softmax", mutates_args=("topk_weights", "topk_ids"))
def topk_softmax(
    topk_weights: Tensor,
    topk_ids: Tensor,
    gating_output: Tensor,
    renormalize: bool,
    moe_softcapping: float,
    correction_bias: Optional[Tensor],
) -> None:
    _sgl.topk_softmax(
        topk_weights,
        topk_ids,
        _plain(gating_output),
        renormalize,
        moe_softcapping,
        _plain(correction_bias),
    )


@topk_softmax.register_fake
def _(topk_weights, topk_ids, gating_output, renormalize, moe_softcapping, correction_bias):
    return None


@torch.library.custom_op("switchyard::topk_sigmoid", mutates_args=("topk_weights", "topk_ids"))
def topk_sigmoid(
    topk_weights: Tensor,
    topk_ids: Tensor,
    gating_output: Tensor,
    renormalize: bool,
    correction_bias: Optional[Tensor],
    routed_scaling_factor: float,
    num_fused_shared_experts: int,
) -> None:
    _sgl.topk_sigmoid(
        topk_weights,
        topk_ids,
        _plain(gating_output),
        renormalize,
        _plain(correction_bias),
        routed_scaling_factor,
        num_fused_shared_experts,
    )


@topk_sigmoid.register_fake
def _(topk_weights, topk_ids, gating_output, renormalize, correction_bias, rsf, num_shared):
    return None


@torch.library.custom_op("switchyard::moe_fused_gate", mutates_args=())
def moe_fused_gate(
    input_tensor: Tensor,
    bias: Optional[Tensor],
    num_expert_group: int,
    topk_group: int,
    topk: int,
    num_fused_shared_experts: int,
    routed_scaling_factor: float,
    apply_routed_scaling_factor_on_output: bool,
) -> tuple[Tensor, Tensor]:
    return _sgl.moe_fused_gate(
        _plain(input_tensor),
        _plain(bias),
        num_expert_group,
        topk_group,
        topk,
        num_fused_shared_experts,
        routed_scaling_factor,
        apply_routed_scaling_factor_on_output,
    )


@moe_fused_gate.register_fake
def _(input_tensor, bias, num_expert_group, topk_group, topk, num_shared, rsf, apply_rsf):
    rows = input_tensor.shape[0]
    return (
        input_tensor.new_empty((rows, topk), dtype=torch.float32),
        input_tensor.new_empty((rows, topk), dtype=torch.int32),
    )


@torch.library.custom_op("switchyard::route", mutates_args=())
def route(
    logits: Tensor,
    bias: Optional[Tensor],
    num_token_non_padded: Optional[Tensor],
    placement: Optional[Tensor],
    replica_counts: Optional[Tensor],
    num_physical_experts: int,
    top_k: int,
    num_shared_experts: int,
    score_func: str,
    group_score: str,
    num_groups: int,
    topk_groups: int,
    renormalize: bool,
    routed_scaling_factor: float,
    apply_rsf_on_output: bool,
    softcap: float,
) -> tuple[Tensor, Tensor]:
    kwargs = dict(
        num_experts=int(logits.shape[-1]),
        top_k=top_k,
        num_shared_experts=num_shared_experts,
        score_func=score_func,
        group_score=group_score,
        num_groups=num_groups,
        topk_groups=topk_groups,
        renormalize=renormalize,
        routed_scaling_factor=routed_scaling_factor,
        apply_rsf_on_output=apply_rsf_on_output,
        softcap=softcap,
    )
    rows, columns = logits.shape[0], top_k + num_shared_experts
    weights = logits.new_empty((rows, columns), dtype=torch.float32)
    ids = logits.new_empty((rows, columns), dtype=torch.int32)
    _sgl.route_into(
        kwargs,
        _plain(logits),
        weights,
        ids,
        bias=_plain(bias),
        num_token_non_padded=num_token_non_padded,
        placement=placement,
        replica_counts=replica_counts,
        num_physical_experts=num_physical_experts,
    )
    return weights, ids


@route.register_fake
def _(
    logits,
    bias,
    num_token_non_padded,
    placement,
    replica_counts,
    num_physical_experts,
    top_k,
    num_shared_experts,
    *args,
):
    rows, columns = logits.shape[0], top_k + num_shared_experts
    return (
        logits.new_empty((rows, columns), dtype=torch.float32),
        logits.new_empty((rows, columns), dtype=torch.int32),
    )


# ---- alignment, layouts, permute, combine ----------------------------------------------------


@torch.library.custom_op(
    "switchyard::moe_align_block_size",
    mutates_args=("sorted_token_ids", "experts_ids", "num_tokens_post_pad"),
)
def moe_align_block_size(
    topk_ids: Tensor,
    num_experts: int,
    block_size: int,
    sorted_token_ids: Tensor,
    experts_ids: Tensor,
    num_tokens_post_pad: Tensor,
    cumsum_buffer: Optional[Tensor],
    pad_sorted_token_ids: bool,
) -> None:
    _sgl.moe_align_block_size(
        topk_ids,
        num_experts,
        block_size,
        sorted_token_ids,
        experts_ids,
        num_tokens_post_pad,
        cumsum_buffer,
        pad_sorted_token_ids,
    )


@moe_align_block_size.register_fake
def _(topk_ids, num_experts, block_size, sorted_ids, experts_ids, post_pad, cumsum, pad):
    return None


@torch.library.custom_op("switchyard::moe_sum_reduce", mutates_args=("output_tensor",))
def moe_sum_reduce(
    input_tensor: Tensor, output_tensor: Tensor, routed_scaling_factor: float
) -> None:
    _sgl.moe_sum_reduce(_plain(input_tensor), output_tensor, routed_scaling_factor)


@moe_sum_reduce.register_fake
def _(input_tensor, output_tensor, routed_scaling_factor):
    return None


@torch.library.custom_op("switchyard::expert_layout", mutates_args=())
def expert_layout(
    topk_ids: Tensor,
    num_experts: int,
    alignment: int,
    max_rows_per_expert: int,
    expert_map: Optional[Tensor],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return tuple(
        _align.expert_layout(
            topk_ids,
            num_experts,
            alignment=alignment,
            max_rows_per_expert=max_rows_per_expert,
            expert_map=expert_map,
        )
    )


@expert_layout.register_fake
def _(topk_ids, num_experts, alignment, max_rows_per_expert, expert_map):
    slots = topk_ids.shape[0] * topk_ids.shape[1]
    if max_rows_per_expert > 0:
        rows = num_experts * max_rows_per_expert
    else:
        rows = slots + num_experts * (alignment - 1)
    new = topk_ids.new_empty
    return (
        new((num_experts,), dtype=torch.int32),
        new((num_experts + 1,), dtype=torch.int64),
        new((slots,), dtype=torch.int64),
        new((rows,), dtype=torch.int64),
        new((1,), dtype=torch.int64),
    )


@torch.library.custom_op("switchyard::permute", mutates_args=())
def permute(
    x: Tensor, dst_to_src: Tensor, top_k: int, src_to_dst: Optional[Tensor] = None
) -> Tensor:
    return _align.permute(_plain(x), dst_to_src, top_k, src_to_dst=src_to_dst)


@permute.register_fake
def _(x, dst_to_src, top_k, src_to_dst=None):
    return x.new_empty((dst_to_src.shape[0], x.shape[1]))


@torch.library.custom_op("switchyard::combine", mutates_args=())
def combine(
    y: Tensor, src_to_dst: Tensor, topk_weights: Tensor, routed_scaling_factor: float
) -> Tensor:
    return _align.combine(
        _plain(y), src_to_dst, _plain(topk_weights), routed_scaling_factor=routed_scaling_factor
    )


@combine.register_fake
def _(y, src_to_dst, topk_weights, routed_scaling_factor):
    return y.new_empty((topk_weights.shape[0], y.shape[1]))


# ---- experts ----------------------------------------------------------------------------------


@torch.library.custom_op("switchyard::fused_experts", mutates_args=())
def fused_experts(
    hidden_states: Tensor,
    w1: Tensor,
    w2: Tensor,
    topk_weights: Tensor,
    topk_ids: Tensor,
    b1: Optional[Tensor],
    b2: Optional[Tensor],
    expert_map: Optional[Tensor],
    activation: str,
    apply_router_weight_on_input: bool,
    routed_scaling_factor: float,
    swiglu_alpha: float,
    swiglu_limit: float,
) -> Tensor:
    return _experts.fused_experts(
        _plain(hidden_states),
        _plain(w1),
        _plain(w2),
        _plain(topk_weights),
        topk_ids,
        activation=activation,
        b13=_plain(b1),
        b2=_plain(b2),
        apply_router_weight_on_input=apply_router_weight_on_input,
        routed_scaling_factor=routed_scaling_factor,
        swiglu_alpha=swiglu_alpha,
        swiglu_limit=swiglu_limit,
        expert_map=expert_map,
    )


@fused_experts.register_fake
def _(hidden_states, w1, w2, topk_weights, topk_ids, b1, b2, expert_map, *args):
    return hidden_states.new_empty(hidden_states.shape)
