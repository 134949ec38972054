"""Causal-LM suites scored by lm-eval: experts of one base (math, code, instruction,
languages) merged and scored on lm-eval's own tasks, with the merged model passed in memory.

- :mod:`tasks.llm.benchmarks`: which lm-eval task scores what, where its data lies in a
  hub snapshot or mirror, and the held-out validation carve.
- :mod:`tasks.llm.checkpoints`: the public checkpoint sets (MergeBench, WizardLM/WizardMath,
  Qwen2.5) and sets given on the command line.
- :mod:`tasks.llm.models`: tokenizer, config and vocabulary checks; a causal LM from a state.
- :mod:`tasks.llm.suite`: the shared suite (resolve, check, pool, score through lm-eval).
- :mod:`tasks.llm.math`: ``llm-math``; :mod:`tasks.llm.crosslingual`: ``llm-crosslingual``.
"""
