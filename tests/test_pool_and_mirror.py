"""The expert pool and the mirror, driven by tiny models of real architectures saved in
their real formats (``save_pretrained`` → config.json + model.safetensors)."""

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

from harness.errors import ArtifactNotFoundError, CheckpointError
from harness.weights.hub import resolve_model
from harness.weights.pool import Checkpoint, ExpertPool


def tiny_clip_vision(seed: int, hidden: int = 16) -> CLIPVisionModel:
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
        projection_dim=8,
    )
    return CLIPVisionModel(config)


def save_to_mirror(model, mirror, repo_id):
    target = mirror / "models" / repo_id
    model.save_pretrained(target)
    return target


@pytest.fixture
def mirror(tmp_path):
    root = tmp_path / "mirror"
    base = tiny_clip_vision(0)
    save_to_mirror(base, root, "openai/tiny-clip")
    for index, task in enumerate(["mnist", "svhn"]):
        expert = tiny_clip_vision(0)
        with torch.no_grad():
            for parameter in expert.parameters():
                parameter.add_(0.01 * (index + 1))
        save_to_mirror(expert, root, f"tanganke/tiny-clip_{task}")
    return root


def vision_only(name):
    """Canonical vision-tower names: transformers 5 saves CLIPVisionModel without the
    ``vision_model.`` prefix that older checkpoints (and CLIPModel) carry."""
    if name.startswith(("text_model.", "text_projection", "visual_projection", "logit_scale")):
        return None
    return name.removeprefix("vision_model.")


def make_pool(mirror, experts=("mnist", "svhn")):
    base = resolve_model("openai/tiny-clip", mirror=mirror)
    checkpoints = {
        task: Checkpoint(
            resolve_model(f"tanganke/tiny-clip_{task}", mirror=mirror).path,
            f"tanganke/tiny-clip_{task}",
            vision_only,
        )
        for task in experts
    }
    return ExpertPool(Checkpoint(base.path, base.id, vision_only), checkpoints)


def test_mirror_resolves_and_pool_streams_real_checkpoints(mirror):
    pool = make_pool(mirror)
    assert pool.tasks == ["mnist", "svhn"]
    reference = CLIPVisionModel.from_pretrained(mirror / "models" / "openai/tiny-clip")
    state = reference.state_dict()
    assert set(pool.names) == set(state)
    groups = list(pool.groups())
    assert len(groups) == len(pool.mergeable_names())
    first = groups[0]
    assert torch.allclose(first.base, state[first.name].float())
    assert torch.allclose(first.task_vectors[0], torch.full_like(first.base, 0.01), atol=1e-6)
    assert torch.allclose(first.task_vectors[1], torch.full_like(first.base, 0.02), atol=1e-6)


def test_merged_state_loads_back_into_the_architecture(mirror):
    pool = make_pool(mirror)
    merged = {g.name: g.base + sum(g.task_vectors) / 2 for g in pool.groups()}
    model = tiny_clip_vision(1)
    model.load_state_dict(pool.output_state(merged), strict=True)


def test_old_prefixed_checkpoints_map_to_the_same_names(mirror, tmp_path):
    from safetensors.torch import load_file

    source = mirror / "models" / "openai/tiny-clip" / "model.safetensors"
    prefixed = {f"vision_model.{k}": v for k, v in load_file(str(source)).items()}
    prefixed["text_projection.weight"] = torch.zeros(2, 2)
    save_file(prefixed, str(tmp_path / "old.safetensors"))
    old = Checkpoint(tmp_path / "old.safetensors", "old", vision_only)
    new = Checkpoint(source.parent, "new", vision_only)
    assert list(old.index) == list(new.index)


def test_mirror_records_revision_from_download_metadata(mirror):
    target = mirror / "models" / "openai/tiny-clip" / ".cache" / "huggingface" / "download"
    target.mkdir(parents=True)
    (target / "model.safetensors.metadata").write_text("a" * 40 + "\netag\n1.0\n")
    resolved = resolve_model("openai/tiny-clip", mirror=mirror)
    assert resolved.source == "mirror" and resolved.revision == "a" * 40


def test_missing_artifact_names_it_and_says_how_to_supply_it(mirror):
    with pytest.raises(ArtifactNotFoundError) as error:
        resolve_model("tanganke/tiny-clip_gtsrb", mirror=mirror)
    message = str(error.value)
    assert "tanganke/tiny-clip_gtsrb" in message
    target = mirror / "models" / "tanganke/tiny-clip_gtsrb"
    assert f"`hf download tanganke/tiny-clip_gtsrb --local-dir {target}`" in message
    assert "\n" not in message


def test_hub_unreachable_says_to_use_a_mirror(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("HARNESS_MIRROR", raising=False)
    with pytest.raises(ArtifactNotFoundError) as error:
        resolve_model("openai/clip-vit-base-patch32-not-cached")
    message = str(error.value)
    assert "cannot be reached" in message and "--mirror" in message and "\n" not in message
    assert "openai/clip-vit-base-patch32-not-cached" in message


def test_expert_of_another_shape_is_rejected(mirror):
    save_to_mirror(tiny_clip_vision(0, hidden=24), mirror, "tanganke/tiny-clip_dtd")
    with pytest.raises(CheckpointError, match="expert 'dtd'.*shape"):
        make_pool(mirror, experts=("mnist", "dtd"))


def test_expert_of_another_architecture_is_rejected(tmp_path, mirror):
    torch.manual_seed(0)
    llama = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=64,
        )
    )
    llama.save_pretrained(tmp_path / "llama")
    base = Checkpoint(mirror / "models" / "openai/tiny-clip", "openai/tiny-clip")
    with pytest.raises(CheckpointError, match="lacks .* tensor"):
        ExpertPool(base, {"math": Checkpoint(tmp_path / "llama", "llama")})


def test_corrupt_checkpoint_is_reported(mirror):
    weights = mirror / "models" / "tanganke/tiny-clip_svhn" / "model.safetensors"
    weights.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        make_pool(mirror)


def test_missing_checkpoint_is_reported(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        _ = Checkpoint(tmp_path / "nowhere", "org/nowhere").index


def test_integer_buffers_are_copied_not_merged(tmp_path):
    for name, offset in [("base", 0.0), ("a", 1.0)]:
        save_file(
            {"w": torch.full((2,), offset), "ids": torch.arange(3)},
            str(tmp_path / f"{name}.safetensors"),
        )
    pool = ExpertPool(
        Checkpoint(tmp_path / "base.safetensors", "base"),
        {"a": Checkpoint(tmp_path / "a.safetensors", "a")},
    )
    assert pool.mergeable_names() == ["w"]
    out = pool.output_state({"w": torch.ones(2)})
    assert out["ids"].dtype == torch.int64 and torch.equal(out["ids"], torch.arange(3))


def test_rowwise_streaming_reads_large_matrices_in_row_slices(tmp_path):
    """A bf16 Llama's embedding, above ``chunk_elements``, comes in row slices read
    straight from the files; the slices tile the tensor and merge back to the same
    weights as whole-tensor streaming."""
    from harness.merging.stream import merge_stream
    from harness.method import MethodContext

    config = LlamaConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=50,
    )
    for name, seed in [("base", 0), ("a", 1), ("b", 2)]:
        torch.manual_seed(seed)
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp_path / name)
    pool = ExpertPool(
        Checkpoint(tmp_path / "base", "base"),
        {task: Checkpoint(tmp_path / task, task) for task in "ab"},
        chunk_elements=100,
    )
    embedding = "model.embed_tokens.weight"
    assert pool.pieces(embedding) == [None]  # not row-wise: whole
    pieces = pool.pieces(embedding, rowwise=True)
    assert pieces[0] == (0, 6) and pieces[-1] == (48, 50)  # 100 // 16 = 6 rows a piece
    assert pool.pieces("model.norm.weight", rowwise=True) == [None]  # 1-D: whole

    whole = pool.base_tensor(embedding)
    slices = [g for g in pool.groups([embedding], rowwise=True)]
    assert [g.rows for g in slices] == pieces
    assert torch.equal(torch.cat([g.base for g in slices]), whole)
    assert torch.equal(
        torch.cat([g.experts[1] for g in slices]), pool.expert_tensor("b", embedding)
    )
    assert len({g.generator().initial_seed() for g in slices}) == len(slices)

    context = MethodContext(None, pool, torch.device("cpu"), progress=False)  # type: ignore[arg-type]

    def average(group):
        return group.base + sum(group.task_vectors) / 2

    sliced = merge_stream(context, average, rowwise=True)
    reference = merge_stream(context, average)
    assert sliced[embedding].dtype == torch.bfloat16
    assert all(torch.equal(sliced[key], reference[key]) for key in reference)

    with pytest.raises(
        RuntimeError, match=r"weight rows 0:6 has shape \[1, 16\], expected \[6, 16\]"
    ):
        merge_stream(context, lambda group: group.base[:1], rowwise=True)
