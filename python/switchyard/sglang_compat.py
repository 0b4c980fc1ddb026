"""SGLang-compatible entry points over any DLPack arrays (numpy, torch, CuPy).

The signatures mirror ``sgl_kernel`` (topk_softmax, topk_sigmoid, moe_fused_gate,
moe_align_block_size, moe_sum_reduce: out-parameters where SGLang uses them) and SGLang's
``select_experts`` / ``fused_experts``. ``switchyard.torch`` registers the same functions as
``torch.library`` ops; this module holds the mapping from SGLang's arguments to Switchyard's
(pure Python, shared by both) and runs it on whatever arrays it is given.

Arguments that Switchyard has no use for are accepted and documented on each function. Where
Switchyard's result differs from SGLang's by design (ties to the lower index, padded rows get
weight 0, deterministic EPLB replicas), SEMANTICS.md and include/switchyard/routing.h say so.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

from . import _arrays
from . import _switchyard as _C

# The largest finite float32: swiglu "no clamp" (the library wants a finite limit).
_FLOAT32_MAX = 3.4028234663852886e38


@dataclasses.dataclass
class TopKConfig:
    """The fields of SGLang's ``TopKConfig`` that select_experts reads (SGLang's own class works
    too: select_experts reads attributes by name). ``top_k`` counts the fused shared experts."""

    top_k: int
    use_grouped_topk: bool = False
    topk_group: Optional[int] = None
    num_expert_group: Optional[int] = None
    renormalize: bool = True
    num_fused_shared_experts: int = 0
    custom_routing_function: Optional[Callable] = None
    correction_bias: Any = None
    torch_native: bool = False
    routed_scaling_factor: Optional[float] = None
    apply_routed_scaling_factor_on_output: bool = False
    fused_shared_experts_scaling_factor: Optional[float] = None
    output_format: Any = None
    scoring_func: str = "softmax"


@dataclasses.dataclass
class MoeRunnerConfig:
    """The fields of SGLang's ``MoeRunnerConfig`` that fused_experts reads (SGLang's own class
    works too). Like SGLang's, ``inplace`` defaults to True: the output overwrites
    hidden_states."""

    activation: str = "silu"
    is_gated: bool = True
    apply_router_weight_on_input: bool = False
    inplace: bool = True
    no_combine: bool = False
    routed_scaling_factor: Optional[float] = None
    gemm1_alpha: Optional[float] = None
    gemm1_clamp_limit: Optional[float] = None


class TopKOutput(NamedTuple):
    """Like SGLang's ``StandardTopKOutput``: unpacks as (topk_weights, topk_ids, router_logits)."""

    topk_weights: Any
    topk_ids: Any
    router_logits: Any


# ---- the mapping SGLang -> Switchyard (pure Python; traced as is by torch.compile) ----------


def routing_kwargs(cfg: Any, num_experts: int) -> dict:
    """RoutingParams keyword arguments for an SGLang TopKConfig (or any object with its field
    names) and E = num_experts routed experts.

    use_grouped_topk without correction_bias is DeepSeek-V2's grouping (softmax, group score =
    max); with a bias it is DeepSeek-V3's "noaux_tc" (sigmoid + bias, group score = top-2 sum);
    num_expert_group == 1 means no grouping (Kimi K2). Otherwise scoring_func picks the score
    ('softmax', 'sigmoid' or 'sqrtsoftplus'); softmax with a correction_bias weighs
    softmax(x + bias), as sgl_kernel.topk_softmax does (SGLang's torch fallback weighs softmax(x)
    and uses the bias for the choice only). Raises NotImplementedError for a
    custom_routing_function.
    """
    if getattr(cfg, "custom_routing_function", None) is not None:
        raise NotImplementedError(
            "select_experts: topk_config.custom_routing_function is not supported by Switchyard"
        )
    num_shared = int(getattr(cfg, "num_fused_shared_experts", 0) or 0)
    scoring = getattr(cfg, "scoring_func", None) or "softmax"
    has_bias = getattr(cfg, "correction_bias", None) is not None
    group_score, num_groups, topk_groups = "none", 1, 1
    if getattr(cfg, "use_grouped_topk", False):
        num_groups = int(cfg.num_expert_group)
        topk_groups = int(cfg.topk_group)
        if has_bias:
            scoring = scoring if scoring == "sqrtsoftplus" else "sigmoid"
            group_score = "top2sum"
        else:
            scoring, group_score = "softmax", "max"
        if num_groups == 1:
            group_score, topk_groups = "none", 1
    rsf = getattr(cfg, "routed_scaling_factor", None)
    return dict(
        num_experts=int(num_experts),
        top_k=int(cfg.top_k) - num_shared,
        num_shared_experts=num_shared,
        score_func=scoring,
        group_score=group_score,
        num_groups=num_groups,
        topk_groups=topk_groups,
        renormalize=bool(getattr(cfg, "renormalize", True)),
        routed_scaling_factor=float(rsf) if rsf else 1.0,
        apply_rsf_on_output=bool(getattr(cfg, "apply_routed_scaling_factor_on_output", False)),
        softcap=0.0,
    )


def placement_args(info: Any) -> dict:
    """route() placement arguments for SGLang's ExpertLocationDispatchInfo (None: none), as
    given (route_into converts them to int32 when needed).

    'static' uses the per-rank static map [E]; 'dynamic', 'fake' and 'random' use the replica
    table [E, R] and its counts, from which Switchyard picks replica (t*K + k) mod count
    (deterministic; SGLang draws one at random).
    """
    if info is None:
        return {}
    algorithm = info.ep_dispatch_algorithm
    if algorithm == "static":
        return dict(
            placement=info.partial_logical_to_rank_dispatch_physical_map,
            num_physical_experts=int(info.num_physical_experts),
        )
    if algorithm in ("dynamic", "fake", "random"):
        return dict(
            placement=info.partial_logical_to_all_physical_map,
            replica_counts=info.partial_logical_to_all_physical_map_num_valid,
            num_physical_experts=int(info.num_physical_experts),
        )
    raise NotImplementedError(
        f"select_experts: expert_location_dispatch_info.ep_dispatch_algorithm = {algorithm}: "
        "expected static, dynamic, fake or random"
    )


def experts_kwargs(cfg: Any) -> dict:
    """fused_experts keyword arguments (activation, scaling, swiglu constants, inplace) for an
    SGLang MoeRunnerConfig (None: the defaults, as SGLang's).

    activation 'silu' (or 'swiglu') with gemm1_alpha set is gpt-oss' clamped SwiGLU
    ('swiglu_oai', limit gemm1_clamp_limit); 'gelu' is the erf form, 'gelu_tanh' the tanh form;
    is_gated=False takes 'relu2' only. Raises NotImplementedError for no_combine=True.
    """
    cfg = MoeRunnerConfig() if cfg is None else cfg
    if getattr(cfg, "no_combine", False):
        raise NotImplementedError(
            "fused_experts: moe_runner_config.no_combine = True: Switchyard combines the expert "
            "outputs in the same call (per-slot outputs are not returned)"
        )
    activation = getattr(cfg, "activation", "silu") or "silu"
    alpha = getattr(cfg, "gemm1_alpha", None)
    limit = getattr(cfg, "gemm1_clamp_limit", None)
    if limit is None:
        limit = getattr(cfg, "swiglu_limit", None)
    gated = bool(getattr(cfg, "is_gated", True))
    names = {
        "silu": "silu",
        "swiglu": "silu",
        "gelu": "gelu",
        "gelu_tanh": "gelu_tanh",
        "swiglu_oai": "swiglu_oai",
        "relu2": "relu2",
    }
    name = names.get(activation)
    if name == "silu" and alpha is not None:
        name = "swiglu_oai"
    if name is None or gated != (name != "relu2"):
        raise NotImplementedError(
            f"fused_experts: moe_runner_config.activation = {activation} (is_gated = {gated}): "
            "expected silu, swiglu, gelu, gelu_tanh, swiglu_oai (gated) or relu2 (not gated)"
        )
    rsf = getattr(cfg, "routed_scaling_factor", None)
    return dict(
        activation=name,
        apply_router_weight_on_input=bool(getattr(cfg, "apply_router_weight_on_input", False)),
        routed_scaling_factor=float(rsf) if rsf is not None else 1.0,
        swiglu_alpha=float(alpha) if alpha is not None else 1.702,
        swiglu_limit=float(limit) if limit is not None else _FLOAT32_MAX,
        inplace=bool(getattr(cfg, "inplace", True)),
    )


def check_unquantized(**quantization: Any) -> None:
    """Raises NotImplementedError naming the first quantization argument that is set: Switchyard's
    experts take bfloat16/float16 weights."""
    for name, value in quantization.items():
        if value is not None and value is not False:
            raise NotImplementedError(
                f"fused_experts: {name} = {value if isinstance(value, bool) else 'a tensor'}: "
                "Switchyard's experts take unquantized bfloat16/float16 weights"
            )


def sigmoid_gate_kwargs(
    num_experts: int,
    num_columns: int,
    num_expert_group: int,
    topk_group: int,
    num_fused_shared_experts: int,
    routed_scaling_factor: float,
    apply_routed_scaling_factor_on_output: bool,
) -> dict:
    """RoutingParams keyword arguments of moe_fused_gate: sigmoid + bias, groups by top-2 sum
    (none for one group), always renormalised; `num_columns` counts the shared experts."""
    grouped = num_expert_group > 1
    return dict(
        num_experts=int(num_experts),
        top_k=int(num_columns) - int(num_fused_shared_experts),
        num_shared_experts=int(num_fused_shared_experts),
        score_func="sigmoid",
        group_score="top2sum" if grouped else "none",
        num_groups=int(num_expert_group) if grouped else 1,
        topk_groups=int(topk_group) if grouped else 1,
        renormalize=True,
        routed_scaling_factor=float(routed_scaling_factor) if routed_scaling_factor > 0 else 1.0,
        apply_rsf_on_output=bool(apply_routed_scaling_factor_on_output),
    )


# ---- running it on arrays ---------------------------------------------------------------------


def _as_2d(a: Any, columns: int) -> Any:
    """[..., columns] arrays as [rows, columns] (2-D arrays as they are, so that errors show the
    caller's shape)."""
    return a if len(a.shape) == 2 else a.reshape(-1, columns)


def route_into(
    kwargs: dict,
    logits: Any,
    topk_weights: Any,
    topk_ids: Any,
    *,
    bias: Any = None,
    num_token_non_padded: Any = None,
    placement: Any = None,
    replica_counts: Any = None,
    num_physical_experts: int = 0,
) -> None:
    """Routes `logits` with RoutingParams(**kwargs) into caller-owned outputs (any shape that
    views as [M, K+S]). The bias is converted to float32, the padding count (an int or an array)
    and the placement maps to int32 when needed."""
    params = _C.RoutingParams(**kwargs)
    columns = params.top_k + params.num_shared_experts
    if isinstance(num_token_non_padded, int):
        num_token_non_padded = _arrays.fill(
            _arrays.empty(logits, (1,), "int32"), num_token_non_padded
        )
    with _arrays.on_device(logits):
        _C.route(
            params,
            _as_2d(logits, logits.shape[-1]),
            _as_2d(topk_weights, columns),
            _as_2d(topk_ids, columns),
            bias=_arrays.contiguous(_arrays.astype(bias, "float32")) if bias is not None else None,
            num_tokens_non_padded=_arrays.astype(num_token_non_padded, "int32"),
            placement=_arrays.astype(placement, "int32"),
            replica_counts=_arrays.astype(replica_counts, "int32"),
            num_physical_experts=num_physical_experts,
            stream=_arrays.current_stream(logits),
        )


def topk_softmax(
    topk_weights: Any,
    topk_ids: Any,
    gating_output: Any,
    renormalize: bool = False,
    moe_softcapping: float = 0.0,
    correction_bias: Any = None,
) -> None:
    """sgl_kernel.topk_softmax: writes topk_weights [M, K] float32 and topk_ids [M, K]
    int32/int64 from gating_output [M, E] (float32/bfloat16/float16).

    softcap (moe_softcapping > 0: c * tanh(x / c)), then + correction_bias, then softmax over all
    E; the K largest probabilities, renormalised when asked. Ties go to the lower expert index.
    """
    kwargs = dict(
        num_experts=int(gating_output.shape[-1]),
        top_k=int(topk_weights.shape[-1]),
        score_func="softmax",
        renormalize=bool(renormalize),
        softcap=float(moe_softcapping),
    )
    route_into(kwargs, gating_output, topk_weights, topk_ids, bias=correction_bias)


def topk_sigmoid(
    topk_weights: Any,
    topk_ids: Any,
    gating_output: Any,
    renormalize: bool = False,
    correction_bias: Any = None,
    routed_scaling_factor: float = 1.0,
    num_fused_shared_experts: int = 0,
) -> None:
    """sgl_kernel.topk_sigmoid: s = sigmoid(x), ranked by s + correction_bias, weights s
    (bias-free), renormalised when asked.

    routed_scaling_factor and num_fused_shared_experts (later sgl_kernel versions): the last
    num_fused_shared_experts columns of topk_weights/topk_ids get ids E + i and weight
    routed_sum / routed_scaling_factor (the fused shared experts, as moe_fused_gate writes them);
    the routed weights are not scaled.
    """
    num_shared = int(num_fused_shared_experts)
    kwargs = dict(
        num_experts=int(gating_output.shape[-1]),
        top_k=int(topk_weights.shape[-1]) - num_shared,
        num_shared_experts=num_shared,
        score_func="sigmoid",
        renormalize=bool(renormalize),
        routed_scaling_factor=float(routed_scaling_factor) if routed_scaling_factor > 0 else 1.0,
    )
    route_into(kwargs, gating_output, topk_weights, topk_ids, bias=correction_bias)


def moe_fused_gate(
    input_tensor: Any,
    bias: Any,
    num_expert_group: int,
    topk_group: int,
    topk: int,
    num_fused_shared_experts: int = 0,
    routed_scaling_factor: float = 0,
    apply_routed_scaling_factor_on_output: bool = False,
) -> tuple[Any, Any]:
    """sgl_kernel.moe_fused_gate (DeepSeek-V3 "noaux_tc"): returns (topk_weights [M, topk]
    float32, topk_ids [M, topk] int32), allocated with the framework of input_tensor.

    sigmoid, + bias for ranking, groups scored by the sum of their two best, topk_group groups
    kept, then the topk - num_fused_shared_experts best experts, renormalised; the last
    num_fused_shared_experts columns get ids E + i and weight 1 / routed_scaling_factor; all
    weights times routed_scaling_factor when apply_routed_scaling_factor_on_output.
    routed_scaling_factor <= 0 (the default 0) means 1. Unlike sgl_kernel, any E <= 1024 and any
    group size work, and bias may have any float dtype (converted to float32 when it is not).
    """
    rows = int(input_tensor.shape[0])
    kwargs = sigmoid_gate_kwargs(
        input_tensor.shape[-1],
        topk,
        num_expert_group,
        topk_group,
        num_fused_shared_experts,
        routed_scaling_factor,
        apply_routed_scaling_factor_on_output,
    )
    with _arrays.on_device(input_tensor):
        weights = _arrays.empty(input_tensor, (rows, int(topk)), "float32")
        ids = _arrays.empty(input_tensor, (rows, int(topk)), "int32")
    route_into(kwargs, input_tensor, weights, ids, bias=bias)
    return weights, ids


def moe_align_block_size(
    topk_ids: Any,
    num_experts: int,
    block_size: int,
    sorted_token_ids: Any,
    experts_ids: Any,
    num_tokens_post_pad: Any,
    cumsum_buffer: Any = None,
    pad_sorted_token_ids: bool = False,
) -> None:
    """sgl_kernel.moe_align_block_size into caller-owned int32 outputs: sorted_token_ids
    [>= M*K + E*(B-1)], experts_ids [>= ceil(that / B)], num_tokens_post_pad [1].

    Slot indices t*K + k grouped by expert in ascending order (deterministic), each expert padded
    to a multiple of block_size with M*K; ids outside [0, num_experts) are dropped (SGLang's
    callers pass num_experts + 1 to give -1 ids a bucket: either value works here).
    cumsum_buffer is not used (Switchyard's scratch is its CUDA workspace, allocated on the
    device); pad_sorted_token_ids is implied: entries past num_tokens_post_pad always hold M*K.
    """
    del cumsum_buffer, pad_sorted_token_ids
    slots = int(topk_ids.shape[0]) * int(topk_ids.shape[1]) if len(topk_ids.shape) == 2 else 0
    with _arrays.on_device(topk_ids):
        nbytes = _C.align_workspace_size(int(num_experts), int(block_size), slots)
        _C.moe_align_block_size(
            int(num_experts),
            int(block_size),
            topk_ids,
            sorted_token_ids,
            experts_ids,
            num_tokens_post_pad,
            workspace=_arrays.gpu_workspace(topk_ids, nbytes),
            stream=_arrays.current_stream(topk_ids),
        )


def moe_sum_reduce(
    input_tensor: Any, output_tensor: Any, routed_scaling_factor: float = 1.0
) -> None:
    """sgl_kernel.moe_sum_reduce: output [M, H] = routed_scaling_factor * sum_k input [M, K, H],
    accumulated in float32 with k ascending (deterministic).

    The default is 1.0 where sgl_kernel's Python wrapper says 0 (which zeroes the output); SGLang
    always passes the factor.
    """
    from .align import moe_sum_reduce as _sum_reduce

    _sum_reduce(input_tensor, routed_scaling_factor=float(routed_scaling_factor), out=output_tensor)


def select_experts(
    hidden_states: Any,
    router_logits: Any,
    topk_config: Any,
    *,
    layer_id: Optional[int] = None,
    num_token_non_padded: Any = None,
    expert_location_dispatch_info: Any = None,
) -> TopKOutput:
    """SGLang's select_experts with Switchyard's router: one call for every router of
    routing_kwargs(), returning TopKOutput(topk_weights [M, top_k] float32, topk_ids int32,
    router_logits).

    num_token_non_padded: rows >= it get ids -1 and weight 0 (SGLang: ids -1 only).
    expert_location_dispatch_info: see placement_args(). layer_id is accepted and unused
    (SGLang's expert-distribution recorder); torch_native, output_format and
    fused_shared_experts_scaling_factor are ignored.
    """
    del layer_id
    if hidden_states is not None and hidden_states.shape[0] != router_logits.shape[0]:
        raise ValueError(
            f"select_experts: hidden_states.shape[0] = {hidden_states.shape[0]}: expected "
            f"router_logits.shape[0] = {router_logits.shape[0]}"
        )
    kwargs = routing_kwargs(topk_config, router_logits.shape[-1])
    rows, columns = int(router_logits.shape[0]), int(topk_config.top_k)
    with _arrays.on_device(router_logits):
        weights = _arrays.empty(router_logits, (rows, columns), "float32")
        ids = _arrays.empty(router_logits, (rows, columns), "int32")
    route_into(
        kwargs,
        router_logits,
        weights,
        ids,
        bias=getattr(topk_config, "correction_bias", None),
        num_token_non_padded=num_token_non_padded,
        **placement_args(expert_location_dispatch_info),
    )
    return TopKOutput(weights, ids, router_logits)


def fused_experts(
    hidden_states: Any,
    w1: Any,
    w2: Any,
    topk_output: Any,
    moe_runner_config: Any = None,
    b1: Any = None,
    b2: Any = None,
    use_fp8_w8a8: bool = False,
    use_int8_w8a8: bool = False,
    use_int8_w8a16: bool = False,
    use_int4_w4a16: bool = False,
    per_channel_quant: bool = False,
    w1_scale: Any = None,
    w2_scale: Any = None,
    w1_zp: Any = None,
    w2_zp: Any = None,
    a1_scale: Any = None,
    a2_scale: Any = None,
    block_shape: Any = None,
) -> Any:
    """SGLang's fused_experts (fused_moe_triton) with Switchyard's experts: hidden_states [M, H],
    w1 [E, 2I, H] (gate rows then up rows), w2 [E, H, I], topk_output = (topk_weights,
    topk_ids, ...); returns [M, H] in hidden_states' dtype.

    moe_runner_config: see experts_kwargs(); inplace (SGLang's default True) writes the result
    into hidden_states and returns it. The quantization arguments must be left unset
    (NotImplementedError otherwise).
    """
    check_unquantized(
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
    from .experts import fused_experts as _fused_experts

    kwargs = experts_kwargs(moe_runner_config)
    inplace = kwargs.pop("inplace")
    out = _fused_experts(
        hidden_states, w1, w2, topk_output[0], topk_output[1], b13=b1, b2=b2, **kwargs
    )
    if not inplace:
        return out
    if _arrays.framework(hidden_states) == "torch":
        hidden_states.copy_(out)
    else:
        hidden_states[...] = out
    return hidden_states
