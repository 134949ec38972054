"""Outcome-table suites for the routing family: queries × candidate models with per-query
score and cost (harness/routing). ``mini8-outcomes`` is built offline from the harness's
own experts; ``routerdc``, ``routellm-gsm8k``, ``routerbench`` and ``embedllm`` read the
real released files from a mirror."""
