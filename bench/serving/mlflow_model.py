"""Trains the workshop's decision tree on the iris training data and saves it as an MLflow model."""
import sys

import mlflow.sklearn
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

train, out = sys.argv[1], sys.argv[2]
data = pd.read_csv(train, header=None)
model = DecisionTreeClassifier(max_leaf_nodes=5, random_state=0).fit(data.iloc[:, 1:].values, data.iloc[:, 0].values)
# We made this tree ourselves just above, so its node storage type is trusted.
mlflow.sklearn.save_model(model, out, skops_trusted_types=["sklearn.tree._tree.Tree"])
