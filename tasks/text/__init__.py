"""Language suites: GLUE (GPT-2, Flan-T5), the offline minitext suite and CrossEval."""
