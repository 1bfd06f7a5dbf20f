"""Reading Wan-architecture model folders and checkpoints: diffusers format (sharded or not), the
Wan repository's key layout, nested .pt checkpoints, and refusals (other architectures, missing
parts, pickles that would run code)."""

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from wan_tiny import save_tiny_wan, tiny_wan_pipeline  # noqa: E402

from framecast.generators.wan_describe import describe  # noqa: E402
from framecast.generators.wan_folder import find_wan  # noqa: E402
from framecast.generators.wan_weights import read_wan_weights  # noqa: E402

# a few tensors named as the Wan repository names them (the rename tables live with the models)
ORIGINAL_TRANSFORMER = {"blocks.0.self_attn.q.weight": (24, 24), "blocks.0.self_attn.norm_q.weight": (24,),
                        "text_embedding.0.weight": (24, 32), "head.head.weight": (64, 24), "patch_embedding.weight": (24, 16, 1, 2, 2)}
ORIGINAL_VAE = {"encoder.conv1.weight": (3, 3, 3, 3, 3), "encoder.downsamples.0.residual.0.gamma": (3, 1, 1, 1),
                "conv1.weight": (32, 32, 1, 1, 1)}


def random_state(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def reference():
    return tiny_wan_pipeline()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("wan")
    return save_tiny_wan(root / "single"), save_tiny_wan(root / "sharded", shard=True, scheduler="unipc")


def assert_same_state(ours, module):
    theirs = module.state_dict()
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


@pytest.mark.parametrize("which", [0, 1], ids=["single-file", "sharded"])
def test_diffusers_folder_reads_every_part(folders, reference, which):
    folder = folders[which]
    wan = find_wan(folder)
    assert wan.kind == "diffusers-folder" and wan.layout == "diffusers"
    assert wan.configs["transformer"]["num_layers"] == 2 and wan.configs["vae"]["z_dim"] == 16
    assert wan.part("text_encoder") == folder / "text_encoder" and wan.part("tokenizer") == folder / "tokenizer"
    if which:
        assert len(list((folder / "transformer").glob("*.safetensors"))) > 1
        assert wan.configs["scheduler"]["_class_name"] == "UniPCMultistepScheduler"
    state, layout = wan.transformer_weights()
    assert layout == "diffusers"
    assert_same_state(state, reference.transformer)
    state, layout = wan.vae_weights()
    assert layout == "diffusers"
    assert_same_state(state, reference.vae)
    assert wan.scheduler().native == (which == 0) and wan.scheduler().shift == 3.0
    assert wan.text_encoder().width == 32


def test_describe_names_parts_sizes_and_scheduler(folders, reference):
    text = describe(folders[1])
    n = sum(p.numel() for p in reference.transformer.parameters())
    for expected in ("diffusers format", "WanTransformer3DModel", "AutoencoderKLWan", "UMT5EncoderModel", "T5Tokenizer",
                     "UniPCMultistepScheduler (shift 3", "diffusers' own implementation", "float32", "diffusers keys",
                     f"{n / 1e3:.2f}k parameters"):
        assert expected in text, expected
    assert "framecast's Euler sampler" in describe(folders[0])


def test_original_layout_nested_pt_checkpoint(tmp_path):
    ema, plain = random_state(ORIGINAL_TRANSFORMER, 1), random_state(ORIGINAL_TRANSFORMER, 2)
    path = tmp_path / "self_forcing_dmd.pt"
    wrapped = {f"model.{k}".replace("blocks.0.", "blocks.0._fsdp_wrapped_module."): v for k, v in ema.items()}
    torch.save({"generator_ema": wrapped,
                "generator": {f"model.{k}": v for k, v in plain.items()}, "step": 600}, path)
    wan = find_wan(path)
    assert wan.kind == "checkpoint" and wan.layout is None
    state, layout = wan.transformer_weights()
    assert layout == "wan-original" and set(state) == set(ORIGINAL_TRANSFORMER)
    assert all(torch.equal(state[k], ema[k]) for k in ema)
    state, _ = wan.transformer_weights(key="generator")
    assert all(torch.equal(state[k], plain[k]) for k in plain)
    with pytest.raises(ValueError, match="has no entry 'nope'; it holds: generator_ema, generator, step"):
        wan.transformer_weights(key="nope")
    assert "wan-original keys" in describe(path) and "checkpoint" in describe(path)
    with pytest.raises(ValueError, match="has no vae"):
        wan.part("vae")


def test_wan_repository_folder(tmp_path):
    folder = tmp_path / "Wan2.1-T2V-1.3B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "WanModel", "model_type": "t2v", "dim": 24, "num_layers": 1}))
    transformer = random_state(ORIGINAL_TRANSFORMER)
    save_file(transformer, folder / "diffusion_pytorch_model.safetensors")
    torch.save(random_state(ORIGINAL_VAE), folder / "Wan2.1_VAE.pth")
    (folder / "google" / "umt5-xxl").mkdir(parents=True)
    wan = find_wan(folder)
    assert wan.kind == "wan-folder" and wan.layout == "wan-original"
    state, layout = wan.transformer_weights()
    assert layout == "wan-original" and all(torch.equal(state[k], transformer[k]) for k in transformer)
    state, layout = wan.vae_weights()
    assert layout == "wan-original" and set(state) == set(ORIGINAL_VAE)
    assert wan.part("tokenizer") == folder / "google" / "umt5-xxl"
    assert "the Wan repository's layout" in describe(folder)
    (folder / "models_t5_umt5-xxl-enc-bf16.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="T5 encoder in the Wan repository's own layout"):
        find_wan(folder).text_encoder()
    with pytest.raises(ValueError, match="has no scheduler"):
        find_wan(folder).scheduler()


class Payload:
    """Unpickling this would create a file: the way a malicious checkpoint runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "causvid.pt"
    payload = {"generator": {"blocks.0.self_attn.q.weight": torch.zeros(2), "evil": Payload(marker)}}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(ValueError, match="refused: it holds Python objects other than tensors") as e:
        read_wan_weights(path)
    assert not marker.exists() and "\n" not in str(e.value)


@pytest.mark.parametrize("change, match", [
    (lambda f: (f / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"})),
     "is a StableDiffusionPipeline folder, not a Wan model"),
    (lambda f: (f / "transformer" / "config.json").write_text(json.dumps({"_class_name": "FluxTransformer2DModel"})),
     "holds a FluxTransformer2DModel, not a Wan transformer"),
    (lambda f: shutil.rmtree(f / "vae"), "lacks the vae folder"),
    (lambda f: (f / "scheduler" / "scheduler_config.json").unlink(), "has no scheduler_config.json"),
    (lambda f: (f / "model_index.json").write_text("{"), "is not valid JSON"),
])
def test_other_architectures_and_missing_parts_are_one_sentence(folders, tmp_path, change, match):
    folder = shutil.copytree(folders[0], tmp_path / "copy")
    change(folder)
    with pytest.raises(ValueError, match=match) as e:
        find_wan(folder)
    assert "\n" not in str(e.value)


def test_damaged_shards_are_refused(folders, tmp_path):
    folder = shutil.copytree(folders[1], tmp_path / "copy")
    index = folder / "transformer" / "diffusion_pytorch_model.safetensors.index.json"
    shard = sorted((folder / "transformer").glob("*-00002-of-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(ValueError, match="does not exist"):
        find_wan(folder).transformer_weights()
    data = json.loads(index.read_text())
    data["weight_map"] = {k: "../../secret.safetensors" for k in data["weight_map"]}
    index.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="names a shard outside its folder"):
        find_wan(folder).transformer_weights()


def test_other_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        find_wan(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="neither model_index.json"):
        find_wan(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    with pytest.raises(ValueError, match="describes a model of type 'llama', not a Wan transformer"):
        find_wan(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "WanModel", "model_type": "i2v"}))
    with pytest.raises(ValueError, match="holds a Wan 'i2v' model .*text-to-video"):
        find_wan(tmp_path)
    save_file({"layers.0.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="are not a Wan transformer .* \\(e.g. 'layers.0.weight'\\)"):
        read_wan_weights(tmp_path / "other.safetensors")
    torch.save({"optimizer": {"lr": 0.1}}, tmp_path / "opt.pt")
    with pytest.raises(ValueError, match="holds no state dict that framecast recognises"):
        read_wan_weights(tmp_path / "opt.pt")
