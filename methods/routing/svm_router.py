"""SVM router (RouterBench's SVM baseline, Hu et al., 2024, https://arxiv.org/abs/2403.12031).

One linear support-vector classifier per candidate model (scikit-learn's ``LinearSVC``,
hinge loss, C) on the standardised query embedding, trained to tell whether the model
answers the query well (score ≥ 0.5). Its signed margin is squashed into a utility,
u_m(x) = σ(f_m(x)), so that λ trades it against cost on the same scale as the other
routers. A model that is right on every (or no) train query gets a constant utility
(its train mean). Route: argmax u − λ·ĉ.
"""

from __future__ import annotations

import warnings

import numpy as np

from harness.method import MethodContext, Solution
from harness.registry import Param, register_method
from harness.routing.router import WILLINGNESS, Router, router_solution, training_table
from harness.routing.table import OutcomeTable, Queries
from harness.routing.training import Standardiser

C = Param(1.0, help="C, the inverse regularisation strength", low=0.0, grid=[0.1, 1.0, 10.0])


class SvmRouter(Router):
    def __init__(self, train: OutcomeTable, c: float) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.svm import LinearSVC

        super().__init__(train)
        self.standardise = Standardiser(train.features)
        x = self.standardise(train.features).numpy()
        dim = x.shape[1]
        self.weights = np.zeros((len(self.models), dim))
        self.bias = np.zeros(len(self.models))
        self.constant = np.full(len(self.models), np.nan)
        for index in range(len(self.models)):
            labels = (train.scores[:, index] >= 0.5).astype(int)
            if labels.min() == labels.max():
                self.constant[index] = train.scores[:, index].mean()
                continue
            svm = LinearSVC(C=c, loss="hinge", dual=True, max_iter=5000, random_state=0)
            with warnings.catch_warnings():  # not converging in max_iter still separates
                warnings.simplefilter("ignore", ConvergenceWarning)
                svm.fit(x, labels)
            self.weights[index], self.bias[index] = svm.coef_[0], svm.intercept_[0]

    def utilities(self, queries: Queries) -> np.ndarray:
        x = self.standardise(queries.features).double().numpy()
        margin = x @ self.weights.T + self.bias
        utility = 1.0 / (1.0 + np.exp(-margin))
        fixed = ~np.isnan(self.constant)
        utility[:, fixed] = self.constant[fixed]
        return utility

    def stored_parameters(self) -> int:
        return int(self.weights.size + self.bias.size + 2 * self.weights.shape[1])


@register_method(
    "svm_router",
    family="routing",
    reference="https://arxiv.org/abs/2403.12031",
    params={"c": C, "willingness": WILLINGNESS},
    needs=("outcomes",),
    description="One linear SVM per model tells whether it answers the query well.",
)
def svm_router(context: MethodContext, c: float, willingness: float) -> Solution:
    return router_solution(SvmRouter(training_table(context), c), willingness)
