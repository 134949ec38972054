"""``harness grid`` fanned out: cells run serially, on Ray or on Slurm, one record each.

The driver (:mod:`harness.grid.driver`) plans the cells, prepares each suite once, hands
the cells to an executor (:mod:`harness.grid.executors`) and shows progress; each cell
runs :func:`harness.grid.cell.run_grid_cell` wherever the engine places it, and writes its
own record (or failure file) atomically, so the grid resumes cell by cell.
"""
