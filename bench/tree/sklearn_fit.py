"""Times scikit-learn's DecisionTreeClassifier (fully grown) on the same CSVs as fit_bench."""
import json
import sys
import time

import numpy as np
from sklearn.tree import DecisionTreeClassifier


def load(path):
    labels = np.loadtxt(path, delimiter=",", usecols=0, dtype=str)
    features = np.loadtxt(path, delimiter=",", dtype=np.float32, converters={0: lambda s: 0.0})[:, 1:]
    return features, labels


x, y = load(sys.argv[1])
hx, hy = load(sys.argv[2])
model = DecisionTreeClassifier(random_state=0)
started = time.perf_counter()
model.fit(x, y)
fit_seconds = time.perf_counter() - started
print(json.dumps({
    "fit_seconds": round(fit_seconds, 4),
    "holdout_accuracy": round(float((model.predict(hx) == hy).mean()), 4),
    "rows": len(y),
    "leaves": int(model.get_n_leaves()),
}))
