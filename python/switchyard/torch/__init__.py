"""switchyard.torch: Switchyard's ops as torch.library custom ops, with SGLang's signatures.

A one-line import swap replaces sgl_kernel's routing, alignment and reduction ops and SGLang's
select_experts / fused_experts:

    from switchyard.torch import topk_softmax, moe_fused_gate, moe_align_block_size
    from switchyard.torch import select_experts, fused_experts, TopKConfig, MoeRunnerConfig

The ops are registered under torch.ops.switchyard.* with fake implementations, so they trace
under torch.compile(fullgraph=True) and can be captured in CUDA graphs (no allocation outside
torch's allocator, no host synchronisation). GPU work runs on torch's current stream of the
tensors' device. No libtorch is linked: the extension sees tensors through DLPack, so one build
serves every PyTorch version (>= 2.4, for torch.library.custom_op).

What each op computes and where it differs from SGLang by design is documented on the functions
of switchyard.sglang_compat, which these wrap.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from .. import sglang_compat as _sgl
from ..sglang_compat import MoeRunnerConfig, TopKConfig, TopKOutput
from . import _ops  # noqa: F401  (registers torch.ops.switchyard.*)

__all__ = [
    "MoeRunnerConfig",
    "TopKConfig",
    "TopKOutput",
    "combine",
    "expert_layout",
    "fused_experts",
    "moe_align_block_size",
    "moe_fused_gate",
    "moe_sum_reduce",
    "permute",
    "select_experts",
    "topk_sigmoid",
    "topk_softmax",
]

_ops_ns = torch.ops.switchyard


def _int32(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else t.to(torch.int32)


def topk_softmax(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    gating_output: torch.Tensor,
    renormalize: bool = False,
    moe_softcapping: float = 0.0,
    correction_bias: Optional[torch.Tensor] = None,
) -> None:
    """sgl_kernel.topk_softmax (see switchyard.sglang_compat.topk_softmax)."""
    _ops_ns.topk_softmax(
        topk_weights, topk_ids, gating_output, renormalize, moe_softcapping, correction_bias
    )


def topk_sigmoid(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    gating_output: torch.Tensor,
    renormalize: bool = False,
    correction_bias: Optional[torch.Tensor] = None,
    routed_scaling_factor: float = 1.0,
    num_fused_shared_experts: int = 0,
) -> None:
    """sgl_kernel.topk_sigmoid (see switchyard.sglang_compat.topk_sigmoid)."""
    _ops_ns.topk_sigmoid(
        topk_weights,
        topk_ids,
        gating_output,
        renormalize,
        correction_bias,
        routed_scaling_factor,
        num_fused_shared_experts,
    )


def moe_fused_gate(
    input_tensor: torch.Tensor,
    bias: Optional[torch.Tensor],
    num_expert_group: int,
    topk_group: int,
    topk: int,
    num_fused_shared_experts: int = 0,
    routed_scaling_factor: float = 0,
    apply_routed_scaling_factor_on_output: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """sgl_kernel.moe_fused_gate -> (topk_weights, topk_ids) (see sglang_compat.moe_fused_gate)."""
    return _ops_ns.moe_fused_gate(
        input_tensor,
        bias,
        num_expert_group,
        topk_group,
        topk,
        num_fused_shared_experts,
        float(routed_scaling_factor),
        apply_routed_scaling_factor_on_output,
    )


def moe_align_block_size(
    topk_ids: torch.Tensor,
    num_experts: int,
    block_size: int,
    sorted_token_ids: torch.Tensor,
    experts_ids: torch.Tensor,
    num_tokens_post_pad: torch.Tensor,
    cumsum_buffer: Optional[torch.Tensor] = None,
    pad_sorted_token_ids: bool = False,
) -> None:
    """sgl_kernel.moe_align_block_size (see sglang_compat.moe_align_block_size)."""
    _ops_ns.moe_align_block_size(
        topk_ids,
        num_experts,
        block_size,
        sorted_token_ids,
        experts_ids,
        num_tokens_post_pad,
        cumsum_buffer,
        pad_sorted_token_ids,
    )


def moe_sum_reduce(
    input_tensor: torch.Tensor, output_tensor: torch.Tensor, routed_scaling_factor: float = 1.0
) -> None:
    """sgl_kernel.moe_sum_reduce (see sglang_compat.moe_sum_reduce)."""
    _ops_ns.moe_sum_reduce(input_tensor, output_tensor, float(routed_scaling_factor))


def select_experts(
    hidden_states: torch.Tensor,
    router_logits: torch.Tensor,
    topk_config: Any,
    *,
    layer_id: Optional[int] = None,
    num_token_non_padded: Optional[torch.Tensor] = None,
    expert_location_dispatch_info: Any = None,
) -> TopKOutput:
    """SGLang's select_experts on one switchyard::route op (see sglang_compat.select_experts)."""
    del layer_id
    kwargs = _sgl.routing_kwargs(topk_config, router_logits.shape[-1])
    del kwargs["num_experts"]
    placement = _sgl.placement_args(expert_location_dispatch_info)
    if num_token_non_padded is not None:
        num_token_non_padded = num_token_non_padded.to(torch.int32)
    weights, ids = _ops_ns.route(
        router_logits,
        getattr(topk_config, "correction_bias", None),
        num_token_non_padded,
        _int32(placement.get("placement")),
        _int32(placement.get("replica_counts")),
        placement.get("num_physical_experts", 0),
        **kwargs,
    )
    return TopKOutput(weights, ids, router_logits)


def fused_experts(
    hidden_states: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    topk_output: Any,
    moe_runner_config: Any = None,
    b1: Optional[torch.Tensor] = None,
    b2: Optional[torch.Tensor] = None,
    use_fp8_w8a8: bool = False,
    use_int8_w8a8: bool = False,
    use_int8_w8a16: bool = False,
    use_int4_w4a16: bool = False,
    per_channel_quant: bool = False,
    w1_scale: Optional[torch.Tensor] = None,
    w2_scale: Optional[torch.Tensor] = None,
    w1_zp: Optional[torch.Tensor] = None,
    w2_zp: Optional[torch.Tensor] = None,
    a1_scale: Optional[torch.Tensor] = None,
    a2_scale: Optional[torch.Tensor] = None,
    block_shape: Optional[list] = None,
) -> torch.Tensor:
    """SGLang's fused_experts on one switchyard::fused_experts op (see
    sglang_compat.fused_experts); inplace copies the result into hidden_states."""
    _sgl.check_unquantized(
        use_fp8_w8a8=use_fp8_w8a8,
        use_int8_w8a8=use_int8_w8a8,
        use_int8_w8a16=use_int8_w8a16,
        use_int4_w4a16=use_int4_w4a16,
        per_channel_quant=per_channel_quant,
        w1_scale=w1_scale,
        w2_scale=w2_scale,
        w1_zp=w1_zp,
        w2_zp=w2_zp,
        a1_scale=a1_scale,
        a2_scale=a2_scale,
        block_shape=block_shape,
    )
    kwargs = _sgl.experts_kwargs(moe_runner_config)
    inplace = kwargs.pop("inplace")
    out = _ops_ns.fused_experts(
        hidden_states, w1, w2, topk_output[0], topk_output[1], b1, b2, None, **kwargs
    )
    if inplace:
        hidden_states.copy_(out)
        return hidden_states
    return out


def expert_layout(
    topk_ids: torch.Tensor,
    num_experts: int,
    *,
    alignment: int = 1,
    max_rows_per_expert: int = 0,
    expert_map: Optional[torch.Tensor] = None,
):
    """switchyard.expert_layout as an op: (counts, offsets, src_to_dst, dst_to_src, overflow)."""
    return _ops_ns.expert_layout(topk_ids, num_experts, alignment, max_rows_per_expert, expert_map)


def permute(
    x: torch.Tensor,
    dst_to_src: torch.Tensor,
    top_k: int,
    src_to_dst: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """switchyard.permute as an op: out[r] = x[dst_to_src[r] // top_k]; pass src_to_dst (the
    inverse map, from expert_layout) so that the CUDA op reads each x row once."""
    return _ops_ns.permute(x, dst_to_src, top_k, src_to_dst)


def combine(
    y: torch.Tensor,
    src_to_dst: torch.Tensor,
    topk_weights: torch.Tensor,
    routed_scaling_factor: float = 1.0,
) -> torch.Tensor:
    """switchyard.combine as an op: out[t] = rsf * sum_k w[t,k] * y[src_to_dst[t*K+k]]."""
    return _ops_ns.combine(y, src_to_dst, topk_weights, float(routed_scaling_factor))
