"""The Flask app behind gunicorn: GET /ping and POST /invocations with CSV rows of features."""
import csv
import io
import os
import pickle

import flask

MODEL_PATH = "/opt/ml/model"


class ScoringService:
    model = None

    @classmethod
    def get_model(cls):
        if cls.model is None:
            with open(os.path.join(MODEL_PATH, "decision-tree-model.pkl"), "rb") as handle:
                cls.model = pickle.load(handle)
        return cls.model


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    healthy = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if healthy else 404, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    if flask.request.mimetype != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    rows = []
    for number, row in enumerate(csv.reader(io.StringIO(flask.request.data.decode("utf-8"))), start=1):
        if not row:
            continue
        try:
            rows.append([float(v) for v in row])
        except ValueError as e:
            return flask.Response(response=f"row {number}: {e}\n", status=400, mimetype="text/plain")
    model = ScoringService.get_model()
    if not rows or any(len(r) != model.n_features_in_ for r in rows):
        return flask.Response(
            response=f"send CSV rows of {model.n_features_in_} features, no label\n", status=400, mimetype="text/plain"
        )
    print(f"Invoked with {len(rows)} records")
    predictions = model.predict(rows)
    return flask.Response(response="".join(f"{p}\n" for p in predictions), status=200, mimetype="text/csv")
