"""XGBoost trained with a focal-loss objective written in one line.

``lossdsl.objectives.xgboost`` derives the per-sample gradient and Hessian of the focal loss with
respect to the raw margin, symbolically: the derivatives one otherwise works out by hand. It is
compared with XGBoost's built-in ``binary:logistic`` on an imbalanced problem.
Figures go to examples/out/xgboost_focal/ (or $LOSSDSL_EXAMPLES_OUT/xgboost_focal/).
"""

import os
from pathlib import Path

import numpy as np
import xgboost as xgb
from matplotlib.figure import Figure

import lossdsl

OUT = Path(os.environ.get("LOSSDSL_EXAMPLES_OUT", Path(__file__).parent / "out")) / "xgboost_focal"
OUT.mkdir(parents=True, exist_ok=True)

focal = lossdsl.objectives.xgboost("focal(gamma=2, alpha=0.75, from_logits=true)")  # the one line
g, h = focal(np.ones(3), np.array([-2.0, 0.0, 2.0]))  # (y_true, margin): per-sample derivatives
print("focal at margins -2, 0, 2 for a positive: gradient", g.round(4), "Hessian", h.round(4))

rng = np.random.default_rng(0)
X = rng.normal(size=(4000, 6))
y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + 0.5 * rng.normal(size=4000) > 2.0).astype(float)  # about 5% positive
train, test = slice(0, 3000), slice(3000, None)
dtrain, dtest = xgb.DMatrix(X[train], label=y[train]), xgb.DMatrix(X[test], label=y[test])
print(f"positives: {y.mean():.1%}")

params = {"max_depth": 4, "eta": 0.1, "base_score": 0.0, "seed": 0, "nthread": 1}
models = {
    "focal (lossdsl)": xgb.train(params, dtrain, 100, obj=focal),
    "binary:logistic": xgb.train({**params, "objective": "binary:logistic", "base_score": 0.5}, dtrain, 100),
}

fig = Figure(figsize=(6, 4), layout="tight")
ax = fig.subplots()
for name, model in models.items():
    margin = model.predict(dtest, output_margin=True)
    order = np.argsort(-margin)
    hits = np.cumsum(y[test][order])
    precision, recall = hits / np.arange(1, len(order) + 1), hits / hits[-1]
    ap = np.sum(precision * y[test][order]) / hits[-1]
    print(f"{name}: average precision {ap:.3f}")
    ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
ax.set(xlabel="recall", ylabel="precision", title="Held-out precision-recall")
ax.legend()
fig.savefig(OUT / "precision_recall.png", dpi=100)
print("wrote", OUT / "precision_recall.png")
