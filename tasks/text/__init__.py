"""Language suites: GLUE (GPT-2, Flan-T5) and the offline minitext suite."""
