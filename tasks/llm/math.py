"""llm-math: a checkpoint set's experts merged, the math skill scored on GSM8K by lm-eval.

The pool is the whole set (MergeBench: instruction, math, coding, safety, multilingual;
DARE: WizardLM + WizardMath; Qwen2.5: Math, Coder, Instruct), as the papers merge them.
Scored by default: ``math`` on ``gsm8k_cot`` (8 fixed exemplars, "The answer is N.",
MergeBench's protocol) for MergeBench sets and ``gsm8k`` (5-shot from train, "#### N")
otherwise; ``math_task=`` names any lm-eval task instead (an unknown name is one line).
Both filters are kept (strict-match, flexible-extract); the suite ranks by strict-match.

Other skills are scored when asked (``--suite-set tasks=math,instruction,multilingual``)
on the benchmarks MergeBench uses, where lm-eval has them:

- instruction: ``ifeval`` through the tokenizer's chat template (a base whose tokenizer has
  no chat template is refused in one line; lm-eval's ifeval needs ``langdetect``);
- multilingual: ``m_mmlu``, ``arc`` and ``hellaswag`` in French, Spanish, German and
  Russian (lm-eval's Okapi translations, ``alexandrainst/m_*``);
- coding: MergeBench's ``humanevalplus`` and ``mbppplus`` are not lm-eval 0.4.13 tasks, so
  asking for coding fails in one line naming them;
- safety: MergeBench's safety benchmarks are not in the harness's reference notes, so
  safety is merged but cannot be scored here.

Published numbers (``tasks/llm/published.py``) are shown beside measured ones.
"""

from __future__ import annotations

from typing import ClassVar

from harness.errors import HarnessError
from harness.registry import Param, register_suite
from tasks.llm.benchmarks import Benchmark
from tasks.llm.published import PUBLISHED_LLM_MATH
from tasks.llm.suite import CausalLmSuite, common_params

MERGEBENCH_LANGUAGES = ("fr", "es", "de", "ru")
STRICT = "exact_match,strict-match"

#: skill → the lm-eval tasks MergeBench scores it on (math: see ``math_task``)
SKILL_BENCHMARKS: dict[str, list[Benchmark]] = {
    "instruction": [Benchmark("ifeval", "prompt_level_strict_acc,none", chat=True)],
    "multilingual": [
        Benchmark(f"{name}_{language}", "acc,none")
        for name in ("m_mmlu", "arc", "hellaswag")
        for language in MERGEBENCH_LANGUAGES
    ],
    "coding": [
        Benchmark("humanevalplus", "pass@1,create_test"),
        Benchmark("mbppplus", "pass@1,none"),
    ],
}
UNSCORABLE = {
    "safety": "MergeBench's safety benchmarks are not named in the harness's reference notes",
}

PARAMS = {
    **common_params("mergebench-llama3.2-3b"),
    "tasks": Param("math", "skills to score, comma-separated (math, instruction, multilingual)"),
    "math_task": Param(
        "auto", "lm-eval task for math (auto: gsm8k_cot for MergeBench sets, else gsm8k)"
    ),
}


@register_suite(
    "llm-math",
    params=PARAMS,
    reference="https://arxiv.org/abs/2505.10833",
    description=(
        "Causal-LM experts of one base (MergeBench, WizardLM/WizardMath, Qwen2.5) merged; "
        "math scored on GSM8K by lm-eval, other skills on MergeBench's lm-eval tasks."
    ),
)
class LlmMath(CausalLmSuite):
    """A checkpoint set's experts merged; skills scored by lm-eval (GSM8K for math)."""

    PARAMS: ClassVar = PARAMS
    published: ClassVar = PUBLISHED_LLM_MATH

    def math_benchmark(self) -> Benchmark:
        name = str(self.options["math_task"])
        if name == "auto":
            name = "gsm8k_cot" if self.set.name.startswith("mergebench") else "gsm8k"
        return Benchmark(name, STRICT)

    def task_benchmarks(self) -> dict[str, list[Benchmark]]:
        wanted = [name.strip() for name in str(self.options["tasks"]).split(",") if name.strip()]
        if not wanted:
            raise HarnessError("tasks= needs at least one skill, e.g. tasks=math")
        chosen: dict[str, list[Benchmark]] = {}
        for skill in wanted:
            if skill not in self.merged:
                raise HarnessError(
                    f"tasks={skill}: the merged experts of {self.set.name} are "
                    f"{', '.join(self.merged)}; score one of them (--suite-set tasks=...) "
                    "or merge it too (--only)"
                )
            if skill in UNSCORABLE:
                raise HarnessError(f"{skill} cannot be scored: {UNSCORABLE[skill]}")
            if skill == "math":
                chosen[skill] = [self.math_benchmark()]
            elif skill in SKILL_BENCHMARKS:
                chosen[skill] = SKILL_BENCHMARKS[skill]
            else:
                raise HarnessError(
                    f"no benchmark is declared for the skill {skill!r}; score one of "
                    f"math, {', '.join(SKILL_BENCHMARKS)}"
                )
        return chosen
