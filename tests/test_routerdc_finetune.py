"""routerdc_finetune: RouterDC with its query encoder fine-tuned end to end (the paper's
recipe), on the packaged all-MiniLM-L6-v2 offline. The routing contract
(tests/test_routing_contract.py) runs it too; these check what is particular to it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

from harness.errors import ArtifactNotFoundError, HarnessError
from harness.registry import METHODS
from harness.routing.encoder import PACKAGED_MINILM, QueryEncoder, encoder_directory
from harness.routing.table import Queries
from tests.routing_tables import generated_table, table_context

METHOD = METHODS.get("routerdc_finetune")


def _fit(table, **settings):
    context = table_context(table)
    values = {**METHOD.defaults, **METHOD.smoke, **settings}
    solution = METHOD.obj(context, **values)
    return solution.task_modules(context.suite.tasks[0])


def test_paper_defaults():
    defaults = METHOD.defaults
    assert defaults["encoder"] == "microsoft/mdeberta-v3-base"
    assert (defaults["top"], defaults["bottom"], defaults["temperature"]) == (3, 3, 1.0)
    assert (defaults["steps"], defaults["lr"], defaults["batch_size"]) == (1000, 5e-5, 16)
    assert defaults["alpha"] == 1.0 and defaults["max_length"] == 512


def test_refused_in_one_line_without_query_texts():
    table = dataclasses.replace(generated_table(queries=60), texts=None)
    with pytest.raises(HarnessError, match="has no query texts; use routerdc"):
        _fit(table)


def test_untrained_utilities_are_cosines_of_the_first_token_state():
    """steps = 0: utility = cos(E(x)[CLS], k_m) / τ with E the pretrained encoder."""
    table = generated_table(queries=60)
    router = _fit(table, steps=0, temperature=0.5)
    texts = list(table.texts[:5])
    encoder = QueryEncoder(encoder_directory(PACKAGED_MINILM), max_length=16)
    with torch.no_grad():
        states = encoder(texts)
        expected = (
            F.cosine_similarity(states[:, None, :], router.model_embeddings[None, :, :], dim=-1)
            / 0.5
        )
    utilities = router.utilities(Queries(features=table.features[:5], texts=tuple(texts)))
    assert torch.allclose(torch.from_numpy(utilities).float(), expected, atol=1e-5)
    assert router.model_embeddings.shape == (len(table.models), encoder.width)


def test_training_moves_the_encoder_itself():
    table = generated_table(queries=60)
    before = QueryEncoder(encoder_directory(PACKAGED_MINILM), max_length=16)
    router = _fit(table, steps=3)
    moved = [
        name
        for (name, old), new in zip(
            before.backbone.named_parameters(), router.encoder.backbone.parameters()
        )
        if not torch.equal(old, new)
    ]
    assert any(name.startswith("encoder.layer.") for name in moved)


def test_encoder_resolution(tmp_path):
    assert encoder_directory(str(tmp_path)) == tmp_path  # a directory is used as given
    packaged = encoder_directory(PACKAGED_MINILM, tmp_path)  # the mirror lacks it: the wheel
    assert (packaged / "model.safetensors").is_file()
    with pytest.raises(ArtifactNotFoundError, match="not in the mirror.*hf download"):
        encoder_directory("microsoft/mdeberta-v3-base", tmp_path)
