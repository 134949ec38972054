"""Routing: per-input (or per-task) choice among experts or their parts (``family="routing"``).

Two settings share the family.

Per-sample routing among experts (``twin``, ``expert_router``, ``wemoe``): ``fn(context,
**hyperparameters) -> Solution`` with ``task_modules``: task -> an ``nn.Module`` that maps
the suite's inputs to what the suite scores (for classification suites, backbone
features), deciding per input which experts or expert parts to use; the same module for
every task, so the task id is never used. The router may be trained on train/validation
data or unlabeled test inputs (``wemoe``: test-time entropy minimisation, recorded in its
``method_info.reads``), never on test labels; tests/test_method_contract.py checks these
methods like every merge. Everything stored beyond one model
(routers, compressed expert parts) is counted in ``extra_parameters``.

Routing over outcome tables (``needs=("outcomes",)``: random_router, best_single,
oracle_router, knn_router, logistic_router, svm_router, mlp_router, mf_router, routerdc,
routerdc_finetune, cascade_router). The suite is a table of queries × candidate models
with each model's per-query score and cost (harness/routing, tasks/routing). A router fits on
``harness.routing.router.training_table(context)`` (the train rows: features, scores,
costs; never a validation or test outcome), is a :class:`harness.routing.router.Router`
(utilities per model, or its own ``route``), and is returned with
``router_solution(router, willingness)``: the same router for every task. Every router
takes the shared ``willingness`` λ (score − λ·normalised cost; 0 = quality only), its
cost-aware version; the suite scores it at its λ and sweeps λ for the curve, AIQ, APGR and
CPT. Only the oracle reads test outcomes, declared by ``reads_outcomes``: it is a bound.
tests/test_routing_contract.py checks every router registered with ``needs=("outcomes",)``
(determinism per seed, unchanged by poisoned test outcomes, between random and oracle,
cheaper as λ grows).
"""
