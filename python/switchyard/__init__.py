"""Switchyard: Mixture-of-Experts layer ops (routing, alignment, layouts, combine, experts) on
the CPU and CUDA, over DLPack arrays: numpy on the CPU, torch or CuPy on the CPU or a GPU.

    import numpy as np, switchyard as sy
    params = sy.RoutingParams(num_experts=8, top_k=2, renormalize=True)
    weights, ids = sy.route(np.random.rand(4, 8).astype(np.float32), params)

Array-generic ops (outputs allocated with the input's framework, GPU work on its current
stream): route, route_and_align, moe_align_block_size, expert_layout, permute, combine,
moe_sum_reduce, fused_experts. SGLang-compatible signatures: switchyard.sglang_compat (any
arrays) and switchyard.torch (torch.library ops for torch.compile and CUDA graphs).
Errors raise SwitchyardError subclasses carrying the library's message, which names the argument:
InvalidArgumentError (a ValueError), UnsupportedError (a NotImplementedError), CudaError and
InternalError (RuntimeErrors). See docs/python.md.
"""

from ._switchyard import (
    MAX_ROUTING_COLUMNS,
    MAX_ROUTING_EXPERTS,
    MAX_ROUTING_GROUPS,
    CudaError,
    ExpertsParams,
    InternalError,
    InvalidArgumentError,
    RoutingParams,
    SwitchyardError,
    UnsupportedError,
    align_max_blocks,
    align_max_padded,
    align_workspace_size,
    built_with_cuda,
    cuda_device_available,
    cuda_device_description,
    expert_layout_workspace_size,
    fused_experts_workspace_size,
    layout_max_rows,
    model_preset,
    model_preset_names,
    route_and_align_workspace_size,
    routing_workspace_size,
)
from . import sglang_compat
from .align import (
    Alignment,
    ExpertLayout,
    combine,
    expert_layout,
    moe_align_block_size,
    moe_sum_reduce,
    permute,
)
from .experts import experts_params, fused_experts, interleave_w13
from .routing import RouteAndAlign, route, route_and_align

__version__ = "0.1.0"

__all__ = [
    "MAX_ROUTING_COLUMNS",
    "MAX_ROUTING_EXPERTS",
    "MAX_ROUTING_GROUPS",
    "Alignment",
    "CudaError",
    "ExpertLayout",
    "ExpertsParams",
    "InternalError",
    "InvalidArgumentError",
    "RouteAndAlign",
    "RoutingParams",
    "SwitchyardError",
    "UnsupportedError",
    "align_max_blocks",
    "align_max_padded",
    "align_workspace_size",
    "built_with_cuda",
    "combine",
    "cuda_device_available",
    "cuda_device_description",
    "expert_layout",
    "expert_layout_workspace_size",
    "experts_params",
    "fused_experts",
    "fused_experts_workspace_size",
    "interleave_w13",
    "layout_max_rows",
    "model_preset",
    "model_preset_names",
    "moe_align_block_size",
    "moe_sum_reduce",
    "permute",
    "route",
    "route_and_align",
    "route_and_align_workspace_size",
    "routing_workspace_size",
    "sglang_compat",
]
