"""GLUE suites: FusionBench's GPT-2 (sequence classification) and Flan-T5 (text-to-text)."""
