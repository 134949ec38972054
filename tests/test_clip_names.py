"""Hub ids and canonical tensor names of the CLIP suites (no models needed)."""

from __future__ import annotations

from harness.registry import SUITES
from harness.suite import SuiteContext
from tasks.vision.clip import datasets as data
from tasks.vision.clip.models import hf_vision_key, open_clip_vision_key


def suite(name: str, **options):
    return SUITES.get(name).obj(SuiteContext(options=options))


def test_expert_ids_follow_the_published_repos():
    vit20 = suite("vit20")
    assert vit20.expert_id("stanford_cars") == "tanganke/clip-vit-base-patch32_stanford-cars"
    assert vit20.expert_id("oxford_iiit_pet") == "tanganke/clip-vit-base-patch32_oxford-iiit-pet"
    assert vit20.expert_id("rendered_sst2") == "tanganke/clip-vit-base-patch32_rendered-sst2"
    large = suite("vit8", arch="vit-l-14")
    assert large.expert_id("dtd") == "tanganke/clip-vit-large-patch14_dtd"
    assert suite("vit8", checkpoints="open_clip").expert_id("svhn") == "task-vectors/ViT-B-32_svhn"
    custom = suite("vit8", experts="me/{arch}-{task}")
    assert custom.expert_id("mnist") == "me/vit-b-32-mnist"


def test_every_task_has_prompts_and_a_dataset():
    assert data.VIT20[:8] == data.VIT8 and data.VIT20[:14] == data.VIT14 and len(data.VIT20) == 20
    for task in data.VIT20:
        assert data.classnames(task) and data.templates(task)
        assert all("{}" in template for template in data.templates(task))
    assert data.TASKS["svhn"].config == "cropped_digits"
    assert data.TASKS["food101"].test_split == "validation"


def test_both_naming_generations_map_to_one_name():
    assert hf_vision_key("vision_model.encoder.layers.0.mlp.fc1.weight") == (
        "encoder.layers.0.mlp.fc1.weight"
    )
    assert hf_vision_key("encoder.layers.0.mlp.fc1.weight") == "encoder.layers.0.mlp.fc1.weight"
    assert hf_vision_key("vision_model.embeddings.position_ids") is None
    assert hf_vision_key("text_model.embeddings.token_embedding.weight") is None
    assert hf_vision_key("visual_projection.weight") is None
    assert open_clip_vision_key("model.visual.conv1.weight") == "conv1.weight"
    assert open_clip_vision_key("visual.transformer.resblocks.0.ln_1.weight") == (
        "transformer.resblocks.0.ln_1.weight"
    )
    assert open_clip_vision_key("model.token_embedding.weight") is None
