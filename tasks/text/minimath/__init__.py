"""minimath: a built small Llama with math, second-language and sorting experts, lm-eval scored."""
