"""The `harness` subcommands, one module each; `harness.cli` assembles them."""
