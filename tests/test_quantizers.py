"""Quantizers: round trips, straight-through gradients, codebook usage."""

import pytest
import torch

from framecast.codecs.quantizers import FSQ, LFQ, VQ, build_quantizer


@pytest.mark.parametrize("kind", ["vq", "lfq", "fsq"])
def test_round_trip_and_straight_through(kind):
    torch.manual_seed(0)
    q = build_quantizer(kind, dim=4 if kind != "lfq" else 10, codebook_size=64, bits=10, levels=[8, 5, 5, 5]).train()
    z = torch.randn(2, 3, 5, q.dim, requires_grad=True)
    out = q(z)
    assert out.z_q.shape == z.shape and out.codes.shape == z.shape[:-1] and out.codes.dtype == torch.long
    assert (out.codes >= 0).all() and (out.codes < q.codebook_size).all()
    # decoding the codes gives back the quantized vectors (eval: the VQ codebook stays put)
    q.eval()
    ev = q(z)
    assert torch.allclose(q.decode_codes(ev.codes), ev.z_q.detach(), atol=1e-5)
    q.train()
    (out.z_q.sum() + out.aux_loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # gradients reach the encoder
    assert 1 <= out.perplexity <= q.codebook_size


def test_fsq_uses_every_code():
    q = FSQ([3, 4, 5])
    z = torch.randn(20000, 3) * 3
    assert q.codebook_size == 60 and torch.unique(q(z).codes).numel() == 60


def test_lfq_codes_are_sign_bits():
    q = LFQ(4).eval()
    z = torch.tensor([[0.5, -1.0, 2.0, -0.1]])
    assert q(z).codes.item() == 1 + 4 and torch.equal(q.decode_codes(q(z).codes), torch.tensor([[1.0, -1.0, 1.0, -1.0]]))


def test_vq_restarts_dead_codes():
    torch.manual_seed(0)
    q = VQ(32, 2, decay=0.5).train()
    data = torch.randn(512, 2) * 0.01 + torch.tensor([5.0, 5.0])  # far from the initial codebook
    for _ in range(5):
        out = q(data)
    assert out.perplexity > 4  # codes were moved onto the data instead of one code taking it all
    assert (q.codebook - torch.tensor([5.0, 5.0])).norm(dim=1).min() < 0.5
    with pytest.raises(ValueError, match="unknown quantizer"):
        build_quantizer("rvq", dim=4)


def test_vq_picks_nearest_code_under_bf16_autocast():
    torch.manual_seed(0)
    q = VQ(512, 8).eval()
    q.codebook.copy_(4.0 + 0.1 * torch.randn(512, 8))  # codes close together, far from 0: bf16 dot products blur them
    z = q.codebook[:256] + 1e-3 * torch.randn(256, 8)  # each right next to its own code
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = q(z).codes
    assert torch.equal(codes, torch.arange(256))


def test_ema_model_carries_the_codebook():
    """The trainer's EMA averages parameters and copies buffers: an EMA tokenizer must quantize
    with the codebook its encoder was trained against, not the one it was born with."""
    from framecast.train.trainer import ema_update

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), VQ(16, 2)).train()
    ema = torch.nn.Sequential(torch.nn.Linear(2, 2), VQ(16, 2))
    ema.load_state_dict(model.state_dict())
    model(torch.randn(64, 2) + 5.0)  # the codebook moves
    ema_update(ema, model, 0.99)
    assert torch.equal(ema[1].codebook, model[1].codebook)
