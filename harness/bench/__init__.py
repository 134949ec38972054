"""`harness bench`: the harness measuring its own speed and memory (eval, merge)."""
