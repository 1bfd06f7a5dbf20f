"""Drawing tokens from logits: temperature, top-k, top-p (nucleus), greedy at temperature 0."""

from __future__ import annotations

import torch

from framecast.rng import Gen


def sample_logits(logits_BV: torch.Tensor, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  generator: Gen = None) -> torch.Tensor:
    """(B, ..., V) logits -> (B, ...) token ids. With a list of generators (one per clip), the
    tokens of clip i are drawn from generator i alone, so a clip does not depend on its batch."""
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise ValueError("temperature must be >= 0, top_p in (0, 1] and top_k >= 0")
    logits = logits_BV.float()
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1:
        sorted_logits, idx = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest set whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    probs = logits.softmax(-1).cpu()
    V = probs.shape[-1]
    if isinstance(generator, (list, tuple)):
        if len(generator) != probs.shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {probs.shape[0]}")
        drawn = torch.stack([torch.multinomial(p.reshape(-1, V), 1, generator=g) for p, g in zip(probs, generator)])
    else:
        drawn = torch.multinomial(probs.reshape(-1, V), 1, generator=generator)
    return drawn.view(probs.shape[:-1]).to(logits.device)
