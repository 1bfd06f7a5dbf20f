"""Quantizers for video tokenizers: VQ, LFQ, FSQ. All take z (..., dim) and return a
`Quantized` with the straight-through quantized vectors, integer codes, an auxiliary loss and
usage statistics, so a tokenizer can swap them freely.

    VQ   nearest codebook vector; codebook updated by exponential moving averages, dead codes
         restarted from the batch (van den Oord et al. 2017; Razavi et al. 2019)
    LFQ  lookup-free: each dimension's sign is one bit, the code is the bit string; an entropy
         penalty spreads usage over the codes (MAGVIT-v2, Yu et al. 2024)
    FSQ  finite scalar quantization: each dimension bounded and rounded to a few levels
         (Mentzer et al. 2024); no codebook, no auxiliary loss
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    z_q: torch.Tensor  # (..., dim), gradients pass straight through to z
    codes: torch.Tensor  # (...,) long
    aux_loss: torch.Tensor  # scalar
    perplexity: torch.Tensor  # exp(entropy of code usage in the batch)


def _perplexity(codes: torch.Tensor, n: int) -> torch.Tensor:
    counts = torch.bincount(codes.reshape(-1), minlength=n).float()
    p = counts / counts.sum().clamp(min=1)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-10))).sum())


class FSQ(nn.Module):
    def __init__(self, levels: list[int]):
        super().__init__()
        if any(lv < 2 for lv in levels):
            raise ValueError(f"FSQ levels must be >= 2, got {levels}")
        self.levels = list(levels)
        self.dim = len(levels)
        self.codebook_size = int(torch.prod(torch.tensor(levels)))
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1]), dim=0)
        self.register_buffer("_basis", basis, persistent=False)

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash to (-(L-1)/2, (L-1)/2) per dimension; even L gets a half-step offset (as in the paper)."""
        half = (self._levels - 1) * (1 - 1e-3) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> Quantized:
        bounded = self._bound(z.float())
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        half = self._levels // 2
        codes = ((torch.round(bounded) + half).long() * self._basis).sum(-1)
        z_q = rounded / half  # roughly in [-1, 1]
        return Quantized(z_q.to(z.dtype), codes, z.new_zeros(()), _perplexity(codes, self.codebook_size))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        digits = (codes[..., None] // self._basis) % self._levels.long()
        half = self._levels // 2
        return (digits - half) / half


class LFQ(nn.Module):
    def __init__(self, bits: int, *, entropy_weight: float = 0.1, commit_weight: float = 0.25, diversity_weight: float = 1.0):
        super().__init__()
        if not 1 <= bits <= 16:
            raise ValueError(f"LFQ uses 1 to 16 bits, got {bits}")
        self.dim = bits
        self.codebook_size = 2**bits
        self.entropy_weight, self.commit_weight, self.diversity_weight = entropy_weight, commit_weight, diversity_weight
        self.register_buffer("_bits", 2 ** torch.arange(bits), persistent=False)
        # All codes as +-1 vectors, for the entropy penalty (2^bits x bits).
        all_codes = ((torch.arange(self.codebook_size)[:, None] // self._bits) % 2) * 2 - 1
        self.register_buffer("_codebook", all_codes.float(), persistent=False)

    def forward(self, z: torch.Tensor) -> Quantized:
        zf = z.float()
        q = torch.where(zf > 0, 1.0, -1.0)
        codes = ((q > 0).long() * self._bits).sum(-1)
        z_q = zf + (q - zf).detach()
        aux = zf.new_zeros(())
        if self.training:
            commit = F.mse_loss(zf, q.detach())
            # Entropy penalty: confident per-token assignments, diverse usage across the batch.
            with torch.autocast(zf.device.type, enabled=False):
                logits = 2 * zf.reshape(-1, self.dim) @ self._codebook.t()  # -||z - c||^2 up to a constant
            probs = logits.softmax(-1)
            per_token = -(probs * torch.log(probs.clamp(min=1e-10))).sum(-1).mean()
            avg = probs.mean(0)
            batch = -(avg * torch.log(avg.clamp(min=1e-10))).sum()
            aux = self.commit_weight * commit + self.entropy_weight * (per_token - self.diversity_weight * batch)
        return Quantized(z_q.to(z.dtype), codes, aux, _perplexity(codes, self.codebook_size))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return ((codes[..., None] // self._bits) % 2).float() * 2 - 1


class VQ(nn.Module):
    def __init__(self, codebook_size: int, dim: int, *, decay: float = 0.99, commit_weight: float = 0.25, restart_below: float = 0.01):
        super().__init__()
        self.dim, self.codebook_size = dim, codebook_size
        self.decay, self.commit_weight, self.restart_below = decay, commit_weight, restart_below
        self.register_buffer("codebook", torch.randn(codebook_size, dim) * 0.1)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", self.codebook.clone())

    def forward(self, z: torch.Tensor) -> Quantized:
        zf = z.float()
        flat = zf.reshape(-1, self.dim)
        with torch.autocast(flat.device.type, enabled=False):  # distances in fp32: bf16 picks the wrong codes
            dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]
        codes = dist.argmin(1)
        q = self.codebook[codes].view_as(zf)
        if self.training:
            self._ema_update(flat.detach(), codes)
        commit = F.mse_loss(zf, q.detach())
        z_q = zf + (q - zf).detach()
        return Quantized(z_q.to(z.dtype), codes.view(zf.shape[:-1]), self.commit_weight * commit, _perplexity(codes, self.codebook_size))

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        counts = torch.bincount(codes, minlength=self.codebook_size).float()  # a one-hot matrix's sums, without the matrix
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        size = (self.cluster_size + 1e-5) / (n + self.codebook_size * 1e-5) * n  # Laplace smoothing
        self.codebook.copy_(self.embed_sum / size[:, None])
        # Restart dead codes from random encoder outputs of this batch.
        dead = self.cluster_size < self.restart_below * n / self.codebook_size
        if dead.any():
            pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
            self.codebook[dead] = flat[pick]
            self.embed_sum[dead] = flat[pick]
            self.cluster_size[dead] = 1.0

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook[codes]


def build_quantizer(kind: str, *, dim: int, codebook_size: int = 1024, bits: int = 10, levels: list[int] | None = None) -> nn.Module:
    if kind == "vq":
        return VQ(codebook_size, dim)
    if kind == "lfq":
        return LFQ(bits)
    if kind == "fsq":
        return FSQ(levels or [8, 5, 5, 5])
    raise ValueError(f"unknown quantizer '{kind}'; choose vq, lfq or fsq")
