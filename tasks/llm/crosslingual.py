"""llm-crosslingual: a math expert and language experts of one base, scored per language.

The layer-swapping setting (Bandarkar et al., ICLR 2025, arXiv 2410.01335): a math expert
(English math SFT) and language experts (target-language instruction SFT) of one base,
scored on MGSM in the target languages, where merging should carry math into the language.
Each task is one expert: ``math`` is scored in English, a language expert in its
language(s), on the lm-eval tasks ``benchmarks=`` names:

- ``mgsm``: ``mgsm_native_cot_<lang>`` (``mgsm_mode=direct``: ``mgsm_direct_<lang>``),
  250 items per language (bn de en es fr ja ru sw te th zh), ranked by flexible-extract;
- ``xnli``: ``xnli_<lang>``, scored on XNLI's validation split as lm-eval does (ar bg de el
  en es fr hi ru sw th tr ur vi zh);
- ``belebele``: ``belebele_<flores code>`` (900 items per language).

A language a benchmark lacks is skipped for it; a task left with none is an error.

Checkpoint sets: the paper's Llama 3.1 8B experts were not released. ``checkpoints=
mergebench-llama3.1-8b`` (default) uses public ids: MergeBench's math expert and its
multilingual expert (French, Spanish, German, Russian), so ``multilingual`` is scored in
those four languages; ``checkpoints=custom`` takes the paper's kind of set from the
command line: ``--suite-set base=org/base --suite-set experts=math=org/m,sw=org/s``.
Only the ``math`` and language experts of a set are merged (``--only`` chooses others).
"""

from __future__ import annotations

from typing import ClassVar

from harness.errors import HarnessError
from harness.registry import Param, register_suite
from tasks.llm.benchmarks import Benchmark
from tasks.llm.suite import CausalLmSuite, common_params

MGSM_LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
XNLI_LANGUAGES = (
    "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
)  # fmt: skip
#: ISO 639-1 → FLORES-200 code, as Belebele names its languages
FLORES = {
    "ar": "arb_Arab", "bg": "bul_Cyrl", "bn": "ben_Beng", "de": "deu_Latn", "el": "ell_Grek",
    "en": "eng_Latn", "es": "spa_Latn", "fr": "fra_Latn", "hi": "hin_Deva", "ja": "jpn_Jpan",
    "ru": "rus_Cyrl", "sw": "swh_Latn", "te": "tel_Telu", "th": "tha_Thai", "tr": "tur_Latn",
    "ur": "urd_Arab", "vi": "vie_Latn", "zh": "zho_Hans",
}  # fmt: skip
BENCHMARKS = ("mgsm", "xnli", "belebele")
FLEXIBLE = "exact_match,flexible-extract"

PARAMS = {
    **common_params("mergebench-llama3.1-8b"),
    "benchmarks": Param("mgsm", "comma-separated: mgsm, xnli, belebele"),
    "mgsm_mode": Param(
        "native_cot", "MGSM prompt: native_cot or direct", choices=("native_cot", "direct")
    ),
}


def benchmarks_for(language: str, kinds: list[str], mode: str) -> list[Benchmark]:
    """The lm-eval tasks of ``kinds`` that exist in ``language``."""
    found = []
    for kind in kinds:
        if kind == "mgsm" and language in MGSM_LANGUAGES:
            found.append(Benchmark(f"mgsm_{mode}_{language}", FLEXIBLE))
        elif kind == "xnli" and language in XNLI_LANGUAGES:
            found.append(Benchmark(f"xnli_{language}", "acc,none"))
        elif kind == "belebele" and language in FLORES:
            found.append(Benchmark(f"belebele_{FLORES[language]}", "acc,none"))
    return found


@register_suite(
    "llm-crosslingual",
    params=PARAMS,
    reference="https://arxiv.org/abs/2410.01335",
    description=(
        "A math expert and language experts of one base merged (layer swapping's setting); "
        "scored by lm-eval on MGSM, XNLI and Belebele per language."
    ),
)
class LlmCrosslingual(CausalLmSuite):
    """Math + language experts merged; each scored by lm-eval in its language(s)."""

    PARAMS: ClassVar = PARAMS

    def _merged_experts(self) -> list[str]:
        """Unless ``--only`` names others: the math expert and the language experts."""
        chosen = [name for name in self.set.experts if name in self.set.languages]
        if "math" not in chosen:
            raise HarnessError(
                f"checkpoint set {self.set.name!r} has no math expert; name one with "
                "checkpoints=custom experts=math=org/model,<lang>=org/model"
            )
        return chosen

    def task_benchmarks(self) -> dict[str, list[Benchmark]]:
        kinds = [k.strip() for k in str(self.options["benchmarks"]).split(",") if k.strip()]
        unknown = [kind for kind in kinds if kind not in BENCHMARKS]
        if unknown or not kinds:
            raise HarnessError(
                f"benchmarks={self.options['benchmarks']!r}: choose from {', '.join(BENCHMARKS)}"
            )
        chosen = {}
        for name in self.merged:
            languages = self.set.languages.get(name)
            if not languages:
                raise HarnessError(
                    f"expert {name!r} of {self.set.name} stands for no language; name "
                    "language experts by their ISO code (sw=org/model)"
                )
            found = [
                b
                for lang in languages
                for b in benchmarks_for(lang, kinds, str(self.options["mgsm_mode"]))
            ]
            if not found:
                raise HarnessError(
                    f"expert {name!r} ({', '.join(languages)}): none of {', '.join(kinds)} has "
                    f"its language; MGSM has {' '.join(MGSM_LANGUAGES)}, XNLI "
                    f"{' '.join(XNLI_LANGUAGES)}, Belebele {' '.join(sorted(FLORES))}"
                )
            chosen[name] = found
        return chosen
