"""Naive numpy references for the Python tests (float64 math, written from SEMANTICS.md).

Selections are made with a stable sort, so equal keys go to the lower index, as the contract
says. Each routing reference also reports, per row, whether a selection was decided by a gap
smaller than `margin` relative to the key (a near-tie that float32 rounding could flip): the
tests leave those rows out (and fail if there are many: the inputs are tie-free by design).
"""

from __future__ import annotations

import numpy as np


def tie_free_logits(rng: np.random.Generator, rows: int, experts: int, spread: float = 8.0):
    """Logits whose values in a row are a permutation of an evenly spaced grid (distinct by
    spread / experts), plus tiny noise: float32."""
    grid = np.linspace(-spread / 2, spread / 2, experts)
    out = np.stack([rng.permutation(grid) for _ in range(rows)]) if rows else np.zeros((0, experts))
    out = out + rng.uniform(-0.1, 0.1, out.shape) * (spread / experts)
    return out.astype(np.float32)


def _select(keys: np.ndarray, k: int, margin: float):
    """Top-k indices per row (descending, ties to the lower index) and a near-tie flag."""
    order = np.argsort(-keys, axis=1, kind="stable")
    ids = order[:, :k]
    rows = np.arange(keys.shape[0])
    near = np.zeros(keys.shape[0], dtype=bool)
    if k < keys.shape[1]:
        kth, nxt = keys[rows, order[:, k - 1]], keys[rows, order[:, k]]
        near = np.isfinite(kth) & (np.abs(kth - nxt) < margin * np.maximum(np.abs(kth), 1e-3))
    return ids, near


def route(
    logits: np.ndarray,
    top_k: int,
    *,
    score_func: str = "softmax",
    bias: np.ndarray | None = None,
    group_score: str = "none",
    num_groups: int = 1,
    topk_groups: int = 1,
    renormalize: bool = False,
    routed_scaling_factor: float = 1.0,
    apply_rsf_on_output: bool = False,
    num_shared: int = 0,
    softcap: float = 0.0,
    margin: float = 1e-5,
):
    """Routing of SEMANTICS.md section 1 for finite logits: (weights float64 [M, K+S],
    ids int64 [M, K+S], near_tie bool [M])."""
    x = logits.astype(np.float64)
    rows, experts = x.shape
    if softcap > 0:
        x = softcap * np.tanh(x / softcap)
    b = np.zeros(experts) if bias is None else bias.astype(np.float64)
    if score_func == "softmax":
        key = x + b
        e = np.exp(key - key.max(axis=1, keepdims=True))
        score = e / e.sum(axis=1, keepdims=True)
        key = score  # ranking by probability equals ranking by key
    elif score_func == "sigmoid":
        score = 1.0 / (1.0 + np.exp(-x))
        key = score + b
    elif score_func == "sqrtsoftplus":
        score = np.sqrt(np.log1p(np.exp(x)))
        key = score + b
    else:
        raise ValueError(score_func)
    near = np.zeros(rows, dtype=bool)
    if group_score != "none":
        g = experts // num_groups
        grouped = key.reshape(rows, num_groups, g)
        if group_score == "max":
            gscore = grouped.max(axis=2)
        else:
            top2 = -np.sort(-grouped, axis=2)[:, :, : min(2, g)]
            gscore = top2.sum(axis=2)
        kept, near_g = _select(gscore, topk_groups, margin)
        near |= near_g
        mask = np.zeros((rows, num_groups), dtype=bool)
        mask[np.arange(rows)[:, None], kept] = True
        key = np.where(np.repeat(mask, g, axis=1), key, -np.inf)
    ids, near_k = _select(key, top_k, margin)
    near |= near_k
    w = np.take_along_axis(score, ids, axis=1)
    if renormalize:
        s = w.sum(axis=1, keepdims=True)
        w = w / np.where(s == 0, 1.0, s)
    routed_sum = w.sum(axis=1, keepdims=True)
    if apply_rsf_on_output:
        w = w * routed_scaling_factor
    if num_shared:
        shared_w = routed_sum / routed_scaling_factor
        if apply_rsf_on_output:
            shared_w = shared_w * routed_scaling_factor
        w = np.concatenate([w, np.repeat(shared_w, num_shared, axis=1)], axis=1)
        shared_ids = np.tile(np.arange(experts, experts + num_shared), (rows, 1))
        ids = np.concatenate([ids, shared_ids], axis=1)
    return w, ids.astype(np.int64), near


def check_alignment(topk_ids, num_experts, block_size, sorted_ids, expert_ids, post_pad):
    """Asserts every invariant of moe_align_block_size's outputs (SEMANTICS.md section 2)."""
    flat = np.asarray(topk_ids).reshape(-1)
    slots = flat.size
    total = int(np.asarray(post_pad).reshape(-1)[0])
    assert total % block_size == 0
    sorted_ids = np.asarray(sorted_ids)
    expert_ids = np.asarray(expert_ids)
    assert np.all(sorted_ids[total:] == slots), "entries past num_tokens_post_pad hold M*K"
    offset = 0
    for e in range(num_experts):
        mine = np.flatnonzero(flat == e)  # ascending slot order
        if mine.size == 0:
            continue
        padded = -(-mine.size // block_size) * block_size
        segment = sorted_ids[offset : offset + padded]
        assert np.array_equal(segment[: mine.size], mine), f"expert {e}: slots"
        assert np.all(segment[mine.size :] == slots), f"expert {e}: padding"
        assert np.all(expert_ids[offset // block_size : (offset + padded) // block_size] == e)
        offset += padded
    assert offset == total, "num_tokens_post_pad = sum of padded segments"


def sum_reduce(x: np.ndarray, routed_scaling_factor: float) -> np.ndarray:
    """rsf * sum_k x[:, k, :] in float32, k ascending (the library's order)."""
    acc = np.zeros((x.shape[0], x.shape[2]), dtype=np.float32)
    for k in range(x.shape[1]):
        acc = acc + x[:, k, :].astype(np.float32)
    return (np.float32(routed_scaling_factor) * acc).astype(x.dtype)


def _activation(name: str, h: np.ndarray, inter: int, alpha: float, limit: float):
    if name == "relu2":
        return np.maximum(h, 0) ** 2
    if name == "swiglu_oai":
        g, u = h[:, 0::2], h[:, 1::2]
        g = np.minimum(g, limit)
        u = np.clip(u, -limit, limit)
        return g / (1 + np.exp(-alpha * g)) * (u + 1)
    g, u = h[:, :inter], h[:, inter:]
    if name == "silu":
        return g / (1 + np.exp(-g)) * u
    if name == "gelu":
        from math import erf

        return 0.5 * g * (1 + np.vectorize(erf)(g / np.sqrt(2))) * u
    if name == "gelu_tanh":
        return 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g**3))) * u
    raise ValueError(name)


def fused_experts(
    x,
    w13,
    w2,
    topk_weights,
    topk_ids,
    *,
    activation="silu",
    b13=None,
    b2=None,
    apply_router_weight_on_input=False,
    routed_scaling_factor=1.0,
    swiglu_alpha=1.702,
    swiglu_limit=7.0,
    expert_map=None,
):
    """The per-expert loop in float64 (intermediate rounded to x's dtype, as the contract says):
    returns float64 [M, H]."""
    xs = x.astype(np.float64)
    rows, hidden = xs.shape
    experts, inter = w2.shape[0], w2.shape[2]
    out = np.zeros((rows, hidden))
    ids = np.asarray(topk_ids).astype(np.int64)
    if expert_map is not None:
        mapped = np.where(
            (ids >= 0) & (ids < len(expert_map)),
            expert_map[np.clip(ids, 0, len(expert_map) - 1)],
            -1,
        )
        ids = mapped
    for e in range(experts):
        tok, col = np.nonzero(ids == e)
        if tok.size == 0:
            continue
        w = topk_weights[tok, col].astype(np.float64)
        inp = xs[tok] * (w[:, None] if apply_router_weight_on_input else 1.0)
        if apply_router_weight_on_input:
            inp = inp.astype(x.dtype).astype(np.float64)
        h = inp @ w13[e].astype(np.float64).T
        if b13 is not None:
            h = h + b13[e].astype(np.float64)
        act = _activation(activation, h, inter, swiglu_alpha, swiglu_limit)
        act = act.astype(x.dtype).astype(np.float64)
        y = act @ w2[e].astype(np.float64).T
        if b2 is not None:
            y = y + b2[e].astype(np.float64)
        scale = 1.0 if apply_router_weight_on_input else w
        np.add.at(out, tok, y * (scale[:, None] if not np.isscalar(scale) else scale))
    return routed_scaling_factor * out
