"""Codecs: the causal VAE's shapes, causality, objective, and its model folder."""

import pytest
import torch

from framecast.codecs import CausalVAE, PixelCodec, VAEConfig
from framecast.data.shapes import shapes_batches
from framecast.generators import from_pretrained, save_pretrained


def _vae():
    torch.manual_seed(0)
    vae = CausalVAE(VAEConfig(width=8, latent_channels=4, stages=2))
    with torch.no_grad():
        for m in vae.modules():
            if hasattr(m, "kernel") and hasattr(m, "conv"):
                m.conv.weight.normal_(0, 0.1)  # wake the zero-initialised temporal convs
    return vae.eval()


def test_shapes_and_identity_codec():
    x = torch.rand(2, 5, 3, 32, 32) * 2 - 1
    vae = _vae()
    z = vae.encode(x)
    assert z.shape == (2, 5, 4, 8, 8) and vae.decode(z).shape == x.shape
    assert torch.equal(PixelCodec().decode(PixelCodec().encode(x)), x)


def test_causal_in_time():
    vae = _vae()
    x = torch.rand(1, 6, 3, 32, 32) * 2 - 1
    y = x.clone()
    y[:, 4:] = torch.rand_like(y[:, 4:])
    za, zb = vae.encode(x), vae.encode(y)
    assert torch.allclose(za[:, :4], zb[:, :4], atol=1e-6) and not torch.allclose(za[:, 4:], zb[:, 4:])
    # a single image encodes like the first frame of a clip
    assert torch.allclose(vae.encode(x[:, :1]), za[:, :1], atol=1e-6)
    da, db = vae.decode(za), vae.decode(zb)
    assert torch.allclose(da[:, :4], db[:, :4], atol=1e-6)


def test_loss_trains_and_folder_round_trip(tmp_path):
    vae = _vae().train()
    batch = next(shapes_batches(batch_size=2, frames=3))
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for i in range(30):
        loss = vae.loss(batch, generator=torch.Generator().manual_seed(i))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    save_pretrained(vae, tmp_path / "vae")
    again = from_pretrained(tmp_path / "vae")
    x = batch["video"]
    assert torch.allclose(again.encode(x), vae.eval().encode(x), atol=1e-6)


def test_tokenizer_every_quantizer(tmp_path):
    import pytest

    from framecast.codecs import TokenizerConfig, VideoTokenizer

    batch = next(shapes_batches(batch_size=2, frames=3))
    for kind in ("vq", "lfq", "fsq"):
        torch.manual_seed(0)
        tok = VideoTokenizer(TokenizerConfig(quantizer=kind, width=8, stages=3, codebook_size=64, bits=6, levels=[4, 4, 4]))
        loss = tok.loss(batch)
        loss.backward()
        assert torch.isfinite(loss) and tok.encoder.inp.weight.grad.abs().sum() > 0
        codes = tok.eval().encode(batch["video"])
        assert codes.shape == (2, 3, 4, 4) and codes.dtype == torch.long
        assert tok.decode(codes).shape == batch["video"].shape
        save_pretrained(tok, tmp_path / kind)
        assert torch.equal(from_pretrained(tmp_path / kind).encode(batch["video"]), codes)
        with pytest.raises(ValueError, match="codes must lie"):
            tok.decode(torch.full((1, 1, 4, 4), tok.codebook_size))


def test_patch_tokenizer_codes_are_local(tmp_path):
    """A patch tokenizer's code is a function of its own patch: changing one patch changes that
    code alone, and decoding changes only that patch's pixels. Trains and round-trips like the rest."""
    import pytest

    from framecast.codecs import TokenizerConfig, VideoTokenizer

    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(quantizer="fsq", encoder="patch", decoder="patch", width=32, stages=2, levels=[4, 4, 4]))
    batch = next(shapes_batches(batch_size=2, frames=3))
    loss = tok.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and tok.encoder.net[0].weight.grad.abs().sum() > 0 and tok.decoder.net[-1].weight.grad.abs().sum() > 0
    tok.eval()
    x = torch.rand(1, 2, 3, 32, 32) * 2 - 1
    y = x.clone()
    y[:, 1, :, 8:12, 20:24] = torch.rand(3, 4, 4) * 2 - 1  # frame 1, token (2, 5)
    with torch.no_grad():  # before rounding: exactly that token's vector moves
        moved = ((tok.encoder(x) - tok.encoder(y)).abs().sum(2) > 0).nonzero().tolist()
    assert moved == [[0, 1, 2, 5]]
    ca, cb = tok.encode(x), tok.encode(y)
    assert ca.shape == (1, 2, 8, 8)
    changed = (ca != cb).nonzero().tolist()
    assert all(c == [0, 1, 2, 5] for c in changed)
    ca[0, 1, 2, 5] = (ca[0, 1, 2, 5] + 1) % tok.codebook_size
    with torch.no_grad():
        diff = (tok.decode(ca) - tok.decode(tok.encode(x))).abs().sum(2)[0]  # (T, H, W)
    assert diff[1, 8:12, 20:24].sum() > 0
    diff[1, 8:12, 20:24] = 0
    assert diff.sum() == 0
    save_pretrained(tok, tmp_path / "patch")
    assert torch.equal(from_pretrained(tmp_path / "patch").encode(x), tok.encode(x))
    with pytest.raises(ValueError, match="encoder 'mlp'; choose conv or patch"):
        VideoTokenizer(TokenizerConfig(encoder="mlp"))


def test_tokenizer_windowed_decoding_is_exact():
    """A streamed token model decodes only its new frames and the `receptive_frames` before them."""
    from framecast.codecs import TokenizerConfig, VideoTokenizer

    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(quantizer="fsq", width=16, stages=2, levels=[4, 4, 4]))
    with torch.no_grad():
        for p in tok.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    codes = torch.randint(0, tok.codebook_size, (1, 12, 8, 8))
    with torch.no_grad():
        whole = tok.decode(codes)
        assert tok.receptive_frames == 6
        assert torch.allclose(tok.decode_frames(codes, 9, 12), whole[:, 9:12], atol=1e-5)
        assert not torch.allclose(tok.decode(codes[:, 8:12]), whole[:, 8:12], atol=1e-3)  # a short window is not enough
    assert VideoTokenizer(TokenizerConfig(encoder="patch", decoder="patch", levels=[4, 4, 4])).receptive_frames == 0


@pytest.mark.parametrize("decoder", ["conv", "patch"])
def test_tokenizer_stream_decoder_matches_whole_clip(decoder):
    """Chunk after chunk (of uneven lengths, one frame too) the stream decoder gives the whole
    clip's frames, the conv decoder from its kept state without decoding a frame twice."""
    from framecast.codecs import TokenizerConfig, VideoTokenizer

    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(quantizer="fsq", width=16, stages=2, levels=[4, 4, 4], encoder=decoder, decoder=decoder))
    with torch.no_grad():
        for p in tok.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        codes = torch.randint(0, tok.codebook_size, (2, 12, 8, 8))
        whole = tok.decode(codes)
        stream = tok.stream_decoder()
        parts = [stream.decode_chunk(codes[:, a:b]) for a, b in [(0, 1), (1, 3), (3, 4), (4, 9), (9, 12)]]
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-5)
