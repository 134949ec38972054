"""Published numbers for llm-math (percent), shown beside measured ones on the leaderboard.

Only figures the harness's reference notes state:

- MergeBench (arXiv 2505.10833): RegMean++ on gsm8k_cot, 35.1 strict-match / 40.0
  flexible-extract with the Llama-3.2-3B experts and 65.8 / 73.3 with Llama-3.1-8B. The
  suite ranks by strict-match; flexible-extract is in the note.
- DARE (arXiv 2311.03099, MergeLM): GSM8K of WizardMath-13B-V1.0 alone 64.2 (WizardLM-13B-V1.2
  alone 2.2) and 66.3 for the two merged with DARE; the merge rule beside the drop is not
  in the reference notes (``dare_ta`` is our reading). They decoded with vLLM (greedy) and
  an Alpaca prompt, not lm-eval's 5-shot ``gsm8k``, so the numbers are not comparable one
  to one.
"""

from __future__ import annotations

from harness.suite import Published

MERGEBENCH = "https://arxiv.org/abs/2505.10833"
DARE = "https://arxiv.org/abs/2311.03099"
DARE_PROTOCOL = "vLLM greedy decoding with an Alpaca prompt (MergeLM), not lm-eval's gsm8k"

PUBLISHED_LLM_MATH: list[Published] = [
    Published(
        "regmean_pp",
        35.1,
        MERGEBENCH,
        "mergebench-llama3.2-3b:meta-llama/Llama-3.2-3B",
        {"math": 35.1},
        note="gsm8k_cot strict-match; flexible-extract 40.0",
    ),
    Published(
        "regmean_pp",
        65.8,
        MERGEBENCH,
        "mergebench-llama3.1-8b:meta-llama/Llama-3.1-8B",
        {"math": 65.8},
        note="gsm8k_cot strict-match; flexible-extract 73.3",
    ),
    Published(
        "individual",
        64.2,
        DARE,
        "wizard-llama2-13b:meta-llama/Llama-2-13b-hf",
        {"math": 64.2},
        note=f"WizardMath-13B-V1.0 on GSM8K (WizardLM-13B-V1.2: 2.2); {DARE_PROTOCOL}",
    ),
    Published(
        "dare_ta",
        66.3,
        DARE,
        "wizard-llama2-13b:meta-llama/Llama-2-13b-hf",
        {"math": 66.3},
        note=f"WizardLM + WizardMath merged with DARE (rule not confirmed); {DARE_PROTOCOL}",
    ),
]
