"""The static leaderboard: run records → a self-contained HTML site (works from file://).

``build_site(results_dir, out_dir)`` in :mod:`leaderboard.build` is the entry point; the
other modules each hold one piece (cells, published numbers, tables, plots, names).
"""
