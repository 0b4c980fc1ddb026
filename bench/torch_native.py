"""PyTorch-native MoE ops: the code paths serving engines fall back to without custom kernels.

Each function computes the same op as the Switchyard op it is compared with in
bench/compare_torch.py, with the same outputs, so that the bench can count wrong results:
  topk_softmax      softmax over all E in float32, topk, renormalise (SGLang fused_topk_native)
  topk_sigmoid      sigmoid, topk of sigmoid + bias, gather the bias-free scores, renormalise
  grouped_topk      DeepSeek-V3 biased_grouped_topk: group score = sum of the top-2 of
                    sigmoid + bias, keep topk_group groups, topk, gather, renormalise, shared
                    expert column E with weight 1 / rsf (SGLang's torch implementation)
  align             moe_align_block_size by a stable sort (no host synchronisation, capturable)
  layout            the contiguous expert layout (alignment 1) by the same sort
  permute, combine  index_select and a weighted sum over the K slots of each token
  sum_reduce        torch.sum over K, times rsf (SGLang's native moe_sum_reduce)
The per-expert loop of the experts comes from bench/torch_experts_baseline.py (moe_loop).
"""

import torch


def topk_softmax(logits, top_k):
    w, ids = torch.topk(torch.softmax(logits.float(), dim=-1), top_k, dim=-1)
    return w / w.sum(dim=-1, keepdim=True), ids.int()


def topk_sigmoid(logits, bias, top_k):
    s = logits.float().sigmoid()
    ids = torch.topk(s + bias, top_k, dim=-1).indices
    w = s.gather(1, ids)
    return w / w.sum(dim=-1, keepdim=True), ids.int()


def grouped_topk(logits, bias, num_groups, topk_groups, top_k, rsf):
    s = logits.float().sigmoid()
    rows, experts = s.shape
    choice = s + bias
    group_scores = choice.view(rows, num_groups, -1).topk(2, dim=-1).values.sum(dim=-1)
    group_idx = torch.topk(group_scores, topk_groups, dim=-1, sorted=False).indices
    group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
    mask = (
        group_mask.unsqueeze(-1).expand(rows, num_groups, experts // num_groups).reshape(rows, -1)
    )
    ids = torch.topk(choice.masked_fill(mask == 0, float("-inf")), top_k, dim=-1).indices
    w = s.gather(1, ids)
    w = w / w.sum(dim=-1, keepdim=True)
    shared_w = torch.full((rows, 1), 1.0 / rsf, device=s.device)
    shared_id = torch.full((rows, 1), experts, dtype=ids.dtype, device=s.device)
    return torch.cat([w, shared_w], 1), torch.cat([ids, shared_id], 1).int()


def _sorted_slots(topk_ids, num_experts):
    flat = topk_ids.reshape(-1).long()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_experts)
    return flat, order, counts


def align(topk_ids, num_experts, block_size):
    """(sorted_token_ids, expert_ids, num_tokens_post_pad) as Switchyard lays them out."""
    flat, order, counts = _sorted_slots(topk_ids, num_experts)
    slots = flat.numel()
    padded = (counts + block_size - 1) // block_size * block_size
    ends = torch.cumsum(padded, 0)
    starts = ends - padded
    first = torch.cumsum(counts, 0) - counts
    expert_of = flat[order]
    dest = starts[expert_of] + torch.arange(slots, device=flat.device) - first[expert_of]
    max_padded = slots + num_experts * (block_size - 1)
    sorted_ids = torch.full((max_padded,), slots, dtype=torch.int32, device=flat.device)
    sorted_ids[dest] = order.int()
    block_starts = torch.arange(0, max_padded, block_size, device=flat.device)
    total = ends[-1]
    expert_ids = torch.searchsorted(ends, block_starts, right=True).int()
    expert_ids = torch.where(block_starts < total, expert_ids, -1)
    return sorted_ids, expert_ids, total.reshape(1).int()


def layout(topk_ids, num_experts):
    """(src_to_dst, dst_to_src) of the contiguous layout, alignment 1."""
    flat, order, _ = _sorted_slots(topk_ids, num_experts)
    src_to_dst = torch.empty_like(order)
    src_to_dst[order] = torch.arange(order.numel(), device=order.device)
    return src_to_dst, order


def permute(x, dst_to_src, top_k):
    return x.index_select(0, dst_to_src // top_k)


def combine(y, src_to_dst, weights, rsf):
    rows, top_k = weights.shape
    gathered = y.index_select(0, src_to_dst).view(rows, top_k, -1).float()
    return (rsf * (gathered * weights.unsqueeze(-1)).sum(dim=1)).to(y.dtype)


def sum_reduce(x, rsf):
    out = torch.sum(x, dim=1)
    return out.mul_(rsf)
