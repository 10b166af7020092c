#!/usr/bin/env python3
"""The population stability index of captured requests against a training channel, in numpy and
pandas: the reference `sagebrush drift` is checked against (to 1e-9) and benchmarked with.

The same definition as crates/engine/src/drift.rs: label in column 0 of the training CSV; for each
feature, the inner edges are the sorted column's values at rank floor(k*n/10), k = 1..9, without
duplicates; a value's bin is searchsorted(edges, x, side="right"); shares are floored at 1e-4;
PSI = sum((a - e) * ln(a / e)). The captured rows are the newest `window` text/csv rows.

    psi_numpy.py --train data/train.csv --capture ~/.sagebrush/capture/iris-prod --window 1000 [--time]

Prints {"psi": [...], "rows": N} as JSON; with --time also the seconds spent reading and computing.
"""

import argparse
import glob
import json
import os
import time

import numpy as np
import pandas as pd

FLOOR = 1e-4
BINS = 10


def captured(capture_dir, width, window):
    files = sorted(glob.glob(os.path.join(capture_dir, "capture-*.jsonl")))
    frames = [pd.read_json(path, lines=True) for path in files]
    lines = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["request"])
    requests = pd.json_normalize(lines["request"].tolist()) if len(lines) else pd.DataFrame()
    bodies = requests.loc[requests["content_type"].str.startswith("text/csv"), "body"] if len(requests) else []
    rows = [row for body in bodies for row in body.splitlines() if row.strip()]
    values = []
    for row in rows:
        fields = row.split(",")
        try:
            numbers = [float(f) for f in fields]
        except ValueError:
            continue
        if len(numbers) == width and all(np.isfinite(numbers)):
            values.append(numbers)
    array = np.array(values, dtype=np.float64).reshape(-1, width)
    return array[-window:]


def psi(train, actual):
    result = []
    for j in range(train.shape[1]):
        column = train[:, j]
        n = len(column)
        edges = np.unique(np.sort(column)[(np.arange(1, BINS) * n) // BINS])
        expected = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1) / n
        counts = np.bincount(np.searchsorted(edges, actual[:, j], side="right"), minlength=len(edges) + 1)
        shares = counts / max(len(actual), 1)
        e = np.maximum(expected, FLOOR)
        a = np.maximum(shares, FLOOR)
        result.append(float(np.sum((a - e) * np.log(a / e))))
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--capture", required=True)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--time", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    train = pd.read_csv(args.train, header=None).iloc[:, 1:].to_numpy(dtype=np.float64)
    actual = captured(args.capture, train.shape[1], args.window)
    read = time.perf_counter()
    values = psi(train, actual)
    done = time.perf_counter()
    out = {"psi": values, "rows": int(len(actual))}
    if args.time:
        out["read_seconds"] = read - started
        out["compute_seconds"] = done - read
    print(json.dumps(out))


if __name__ == "__main__":
    main()
