"""Routing over outcome tables: the shared mechanics of model-level routing.

A routing suite is a table of queries × candidate models with every model's score and
cost per query (RouterBench, RouteLLM, RouterDC, EmbedLLM, and the harness's own experts
scored item by item). Routers train on the table's ``train`` rows and route the ``test``
queries without running any model; the table then says what each choice scored and cost.

- :mod:`harness.routing.table`: the outcome table and the queries a router sees.
- :mod:`harness.routing.router`: the router contract (utilities, willingness to pay).
- :mod:`harness.routing.metrics`: accuracy, cost, AIQ, PGR/APGR, CPT.
- :mod:`harness.routing.curve`: a router's quality–cost curve from a swept λ.
- :mod:`harness.routing.suite`: the suite kind that scores routers on a table.
"""
