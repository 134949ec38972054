"""minicross: the generated cross-capability items are right and unseen, and a merge's
record carries the weakest-link statistics that the leaderboard's page shows.

The suite test shares minimath's small build (same recipe, same cache directory as
tests/test_minimath.py within one pytest session), so the real build, lm-eval scoring and
CLI run in well under a minute here.
"""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")

from harness.evaluation.weakest_link import weakest_link  # noqa: E402
from harness.run.records import read_record, record_files, validation_errors  # noqa: E402
from leaderboard.build import build_site  # noqa: E402
from tasks.text.minicross import data  # noqa: E402
from tasks.text.minimath import data as minimath  # noqa: E402
from tasks.text.minimath import suite as minimath_suite  # noqa: E402
from tests.test_minimath import SMALL_RECIPE  # noqa: E402
from tests.test_runner_cli import invoke  # noqa: E402


def test_cross_items_need_both_parents_and_their_sources_were_never_trained():
    words = minimath.lexicon(0)
    kind_train = {e.question for e in minimath.examples("kind", "train", 4000, 0, {})}
    math_train = {e.question for e in minimath.examples("math", "train", 4000, 0, {})}
    (kind_l2,) = data.examples("kind_l2", "test", 1, 0, words, parent_train=4000)
    (source,) = data.examples("kind_l2", "test", 1, 0, {}, parent_train=4000)
    assert source.question not in kind_train  # not even in L1
    assert kind_l2.question == minimath.translate(source.question, words) != source.question
    assert kind_l2.answer == minimath.translate(source.answer, words)
    assert kind_l2.answer.split("#### ")[1].split() == [
        words[kind] for kind in source.answer.split("#### ")[1].split()
    ]
    items = data.examples("math_kind", "test", 150, 0, {}, parent_train=4000)
    assert len({e.question for e in items}) == 150
    for item in items:
        problem, asked = item.question.split(" ? what kind of word is ")
        assert problem + " ?" not in math_train
        word = asked.removesuffix(" ?")
        kind = "name" if word in minimath.NAMES else "thing"
        worked, answer = item.answer.split(" #### ")
        steps = worked.split(" . ")
        assert steps[-1] == f"{word} is a {kind}"
        for step in steps[:-1]:  # the worked equations hold
            left, right = step.split(" = ")
            assert eval(left) == int(right)
        assert answer == f"{steps[-2].split(' = ')[1]} {kind}"
    # train never holds a test question, and math_l2 is minimath's own task
    train = {e.question for e in data.examples("math_kind", "train", 2000, 0, {}, parent_train=0)}
    assert not train & {e.question for e in items}
    assert data.examples("math_l2", "test", 5, 0, words, parent_train=4000) == (
        minimath.examples("math_l2", "test", 5, 0, words)
    )
    assert data.PARENTS == {
        "math_l2": ("math", "lang2"),
        "kind_l2": ("kind", "lang2"),
        "math_kind": ("math", "kind"),
    }


@pytest.fixture
def small(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(minimath_suite, "RECIPE", SMALL_RECIPE)
    cache = tmp_path_factory.getbasetemp() / "minimath-cache"  # test_minimath's build
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    return cache


def test_a_merge_records_weakest_link_statistics_the_page_shows(
    small, monkeypatch, capsys, tmp_path
):
    results = tmp_path / "results"
    code, _, err = invoke(
        monkeypatch, capsys, "eval", "--tasks", "minicross", "--method", "weight_average",
        "--results", str(results), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    (path,) = record_files(results)
    record = read_record(path)
    assert validation_errors(record) == []
    assert list(record["tasks"]) == ["math", "lang2", "kind", "math_l2", "kind_l2", "math_kind"]
    scores = {task: entry["metrics"]["exact_match"] for task, entry in record["tasks"].items()}
    summary = record["suite"]["summary"]
    assert summary["weakest_link"] == weakest_link(scores, data.PARENTS)
    assert summary["weakest_link"]["count"] == 3
    for cross, parents in data.PARENTS.items():
        row = record["tasks"][cross]["details"]["weakest_link"]
        assert row["parents"] == list(parents)
        assert row["min_parent"] == min(scores[p] for p in parents)
        assert record["tasks"][cross]["n"] == SMALL_RECIPE.test_examples
    assert "math_kind" in {a["role"].split(":", 1)[1] for a in record["artifacts"]
                           if a["role"].startswith("dataset:")}  # fmt: skip

    out = tmp_path / "site"
    build_site(results, out)
    page = (out / "cross-capability.html").read_text()
    assert "minicross: cross capabilities against their parents" in page
    assert 'href="cross-capability.html"' in (out / "index.html").read_text()
    table = (out / "data" / "cross-minicross.json").read_text()
    assert '"below_both": ' + str(summary["weakest_link"]["below_both"]) in table
