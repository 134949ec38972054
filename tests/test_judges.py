"""Judges: CrossEval's protocol (parse, retries, rescale), the three kinds, the cache."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.evaluation.weakest_link import weakest_link
from harness.judges import make_judge, parse_spec
from harness.judges.base import Judge
from harness.judges.cached import CachedJudge
from harness.judges.protocol import (
    MAX_ATTEMPTS,
    RATE_LIMITED,
    RETRY_FORMAT,
    RETRY_RANGE,
    SCORED,
    TIMEOUT,
    UNPARSABLE,
    JudgeRequest,
    Reference,
    judge_with_protocol,
    parse_score,
    rescale,
    user_prompt,
)
from harness.keyed_log import KeyedLog
from tests.crosseval_fixture import ScriptedJudgeServer, save, tiny_causal_lm
from tests.llama_mirror import tiny_tokenizer

SECRET = "sk-test-0123456789-secret"


class ScriptedJudge(Judge):
    """Answers from a list, recording every user prompt it was sent."""

    kind = "scripted"

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    @property
    def identity(self) -> str:
        return "scripted:test"

    def complete(self, system: str, user: str) -> str:
        self.prompts.append(user)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def request(response: str = "Paris.", prompt: str = "Capital of France?") -> JudgeRequest:
    references = (
        Reference("Paris is the capital.", (5.0, 4.0), ("Correct.", "Terse but right.")),
        Reference("Lyon.", (1.0, 1.0), ("Wrong city.", "Incorrect.")),
    )
    return JudgeRequest(prompt, response, references, capability="English", item_id="q1")


def test_score_parsing_and_rescaling():
    assert parse_score("Pros...\n#### Evaluation Score\nScore: 4/5") == 4.0
    assert parse_score("**Score:** 3.5/5") == 3.5
    assert parse_score("Score: [2]/5 first, then Score: 5/5") == 5.0  # the last one wins
    assert parse_score("I would give it four out of five.") is None
    assert (rescale(1), rescale(5), rescale(3)) == (1.0, 100.0, 50.5)


def test_the_prompt_shows_rubric_references_ratings_explanations_and_attachment():
    text = user_prompt(
        JudgeRequest("Summarise it.", "It is about crabs.", request().references, "CRAB DOC")
    )
    assert text.index("[Attached]:\nCRAB DOC") < text.index("[User Prompt]:\nSummarise it.")
    assert "Rating 1: 5/5 | Explanation 1: Correct." in text
    assert "Rating 2: 1/5 | Explanation 2: Incorrect." in text
    assert text.index("[Reference Example 2]") < text.index("[Model Response to be Evaluated]")
    assert text.rstrip().endswith("consistent with the reference ratings.")
    assert "Score: [X]/5" in text


def test_protocol_retries_until_a_score_in_range_and_says_why():
    judge = ScriptedJudge(["no score here", "Score: 7/5", "Fine. Score: 4/5"])
    judgment = judge_with_protocol(judge, request())
    assert (judgment.outcome, judgment.score, judgment.attempts) == (SCORED, 4.0, 3)
    assert judgment.rescaled == rescale(4)
    assert RETRY_FORMAT not in judge.prompts[0]
    assert judge.prompts[1].endswith(RETRY_FORMAT)
    assert judge.prompts[2].endswith(RETRY_FORMAT + RETRY_RANGE)


def test_protocol_gives_up_after_five_unparsable_answers():
    judge = ScriptedJudge(["I refuse to score."])
    judgment = judge_with_protocol(judge, request())
    assert judgment.outcome == UNPARSABLE and judgment.score is None
    assert len(judge.prompts) == MAX_ATTEMPTS == 5


def test_a_tiny_local_model_judge_never_writes_a_score_and_ends_unparsable(tmp_path):
    tokenizer = tiny_tokenizer()
    directory = save(tiny_causal_lm(tokenizer), tokenizer, tmp_path / "judge")
    judge = make_judge(f"local:{directory}?max_new_tokens=6&device=cpu")
    assert judge.identity.startswith("local:judge@files:")
    judgment = judge.judge(request())
    assert judgment.outcome == UNPARSABLE
    assert judgment.attempts == MAX_ATTEMPTS
    assert isinstance(judgment.text, str)


def test_http_judge_scores_sends_the_key_and_never_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", SECRET)
    with ScriptedJudgeServer() as server:
        judge = make_judge(server.spec("good", key_env="TEST_JUDGE_KEY", rpm="0"))
        cached = CachedJudge(judge, root=tmp_path / "cache")
        judgment = cached.judge(request())
        assert judgment.outcome == SCORED and 1 <= judgment.score <= 5
        assert server.authorization == f"Bearer {SECRET}"
        echo = make_judge(server.spec("echo", key_env="TEST_JUDGE_KEY", rpm="0"))
        echoed = CachedJudge(echo, root=tmp_path / "cache").judge(request())
        assert echoed.score == 3.0 and SECRET not in echoed.text and "***" in echoed.text
    stored = "".join(path.read_text() for path in (tmp_path / "cache").glob("*.jsonl"))
    assert stored and SECRET not in stored
    assert SECRET not in json.dumps(judge.describe()) + judge.identity
    assert judge.describe()["key_env"] == "TEST_JUDGE_KEY"


def test_http_judge_retries_a_429_and_counts_timeouts_and_rate_limits(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fast = {"rpm": "0", "backoff": "0.01", "retries": "2"}
    with ScriptedJudgeServer(delay=1.0) as server:
        flaky = make_judge(server.spec("flaky", **fast))
        assert flaky.judge(request()).outcome == SCORED
        assert server.requests["flaky"] == 2  # a 429, then the answer
        limited = make_judge(server.spec("limited", **fast)).judge(request())
        assert limited.outcome == RATE_LIMITED and server.requests["limited"] == 3
        slow = make_judge(server.spec("slow", timeout="0.2", **fast)).judge(request())
        assert slow.outcome == TIMEOUT and "0.2" in slow.detail
        with pytest.raises(HarnessError, match=r"refused the key in \$OPENAI_API_KEY"):
            make_judge(server.spec("refused", **fast)).judge(request())


def test_timeouts_are_not_cached_so_a_rerun_asks_again(tmp_path):
    fast = {"rpm": "0", "backoff": "0.01", "retries": "0", "timeout": "0.2"}
    with ScriptedJudgeServer(delay=0.5) as server:
        cached = CachedJudge(make_judge(server.spec("slow", **fast)), root=tmp_path)
        assert cached.judge(request()).outcome == TIMEOUT
        again = CachedJudge(make_judge(server.spec("slow", **fast)), root=tmp_path)
        again.judge(request())
        assert again.asked == 1 and server.requests["slow"] == 2


def test_cache_resumes_after_an_interruption_without_asking_twice(tmp_path):
    requests = [request(response=f"answer {i}") for i in range(6)]

    class Interrupting(ScriptedJudge):
        def complete(self, system: str, user: str) -> str:
            if len(self.prompts) == 3:
                raise KeyboardInterrupt
            return super().complete(system, user)

    first = CachedJudge(Interrupting(["Score: 2/5"]), root=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        for item in requests:
            first.judge(item)
    assert first.asked == 4  # three finished, the fourth interrupted
    counting = ScriptedJudge(["Score: 5/5"])
    second = CachedJudge(counting, root=tmp_path)
    scores = [second.judge(item).score for item in requests]
    assert len(counting.prompts) == 3 and second.reused == 3
    assert scores == [2.0, 2.0, 2.0, 5.0, 5.0, 5.0]


def test_keyed_log_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "log.jsonl"
    log = KeyedLog(path)
    log.append("a", {"v": 1})
    with open(path, "ab") as handle:
        handle.write(b'{"key": "b", "v"')  # killed inside the write
    reread = KeyedLog(path)
    assert reread.get("a")["v"] == 1 and "b" not in reread and reread.torn == 1
    reread.append("c", {"v": 3})
    assert KeyedLog(path).get("c")["v"] == 3


def test_replay_judge_reads_stored_judgments_and_counts_missing(tmp_path):
    lines = [
        {"prompt": "Capital of France?", "response": "Paris.", "score": 4, "text": "Score: 4/5"},
        {"prompt": "Other?", "response": "x", "score": None},
    ]
    path = tmp_path / "judgments.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    judge = make_judge(f"replay:{path}")
    assert judge.judge(request()).score == 4.0
    assert judge.judge(request(response="Rome.")).outcome == "missing"
    path.write_text('{"prompt": "p"}\n')
    with pytest.raises(HarnessError, match="line 1 is not a judgment"):
        make_judge(f"replay:{path}")


def test_judge_specs_are_checked_in_one_line():
    assert parse_spec("openai:gpt-4o?rpm=10&key_env=K") == (
        "openai",
        "gpt-4o",
        {"rpm": "10", "key_env": "K"},
    )
    for bad, message in [
        ("gpt-4o", "not <kind>:<target>"),
        ("openai:gpt-4o?temperature=1", "no option 'temperature'"),
        ("openai:gpt-4o?rpm=fast", "wrong type"),
        ("openai:gpt-4o?base_url=ftp://x", "must start with http"),
    ]:
        with pytest.raises(HarnessError, match=message):
            make_judge(bad)


def test_weakest_link_statistics():
    scores = {"a": 60.0, "b": 50.0, "ab": 45.0, "c": 70.0, "ac": 65.0, "d": 40.0, "bd": 51.0}
    parents = {"ab": ("a", "b"), "ac": ("a", "c"), "bd": ("b", "d"), "ae": ("a", "e")}
    stats = weakest_link(scores, parents)
    assert stats["cross"]["ab"]["position"] == "below_both"
    assert stats["cross"]["ab"]["minus_min_parent"] == -5.0
    assert stats["cross"]["ac"]["position"] == "between"
    assert stats["cross"]["bd"]["position"] == "above_both"
    assert (stats["count"], stats["below_both"], stats["between"], stats["above_both"]) == (
        3,
        1,
        1,
        1,
    )
    assert stats["incomplete"] == ["ae"]  # parent e not scored
    assert stats["count_parents_differ"] == 3 and stats["below_both_parents_differ"] == 1


def test_long_attachments_are_cut_to_the_judges_limit_and_urls_carry_no_credentials():
    text = user_prompt(JudgeRequest("Sum up.", "ok", attachment="x" * 50), max_attachment_chars=10)
    assert "x" * 10 in text and "x" * 11 not in text
    judge = make_judge("openai:m?base_url=http://127.0.0.1:9/v1&max_attachment_chars=7")
    assert judge.max_attachment_chars() == 7 and "127.0.0.1:9/v1" in judge.identity
    with pytest.raises(HarnessError, match="must not hold credentials"):
        make_judge("openai:m?base_url=http://user:pw@127.0.0.1:9/v1")


def test_an_endpoint_judge_runs_requests_in_parallel_and_keeps_their_order(tmp_path):
    items = [request(response=f"answer {i}") for i in range(12)]
    with ScriptedJudgeServer() as server:
        spec = server.spec("good", rpm="0", concurrency="4")
        parallel = CachedJudge(make_judge(spec), root=tmp_path / "a").judge_all(items)
        serial = [make_judge(server.spec("good", rpm="0")).judge(item) for item in items]
        assert server.requests["good"] == 24
    assert [j.score for j in parallel] == [j.score for j in serial]
    assert all(j.outcome == SCORED for j in parallel)
    assert len(KeyedLog(next((tmp_path / "a").glob("*.jsonl")))) == 12
