#!/usr/bin/env python3
"""Captured requests for bench/drift/run.sh: ROWS rows, one per request, as capture files of at
most PER_FILE lines in the layout an endpoint's capture folder has
(`capture-<13-digit ms>-<6-digit seq>.jsonl`, one JSON object per line, `time_ms` > 0 and
increasing, file names sorting by time).

Drawn with a fixed seed from the training channel's rows (label in column 0, features in columns
1..4): half of the rows are a training row's features as they are, half have feature 2 (0-based,
as `sagebrush drift` numbers them: column 3 of the training file) shifted by SHIFT. The two halves
are shuffled together.

    generate.py TRAIN_CSV CAPTURE_DIR ENDPOINT [ROWS, default 100000] [PER_FILE, default 10000]

Prints {"rows": N, "files": F, "bytes": B} as JSON.
"""

import csv
import json
import os
import random
import sys

SEED = 20251201
SHIFT = 1.5
SHIFTED_FEATURE = 2
START_MS = 1764600000000


def main():
    train, out, endpoint = sys.argv[1:4]
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 100000
    per_file = int(sys.argv[5]) if len(sys.argv) > 5 else 10000
    with open(train, newline="") as f:
        training = [r for r in csv.reader(f) if r]
    rng = random.Random(SEED)
    shifted = [False] * (rows - rows // 2) + [True] * (rows // 2)
    rng.shuffle(shifted)
    os.makedirs(out, exist_ok=True)
    files, size, handle = 0, 0, None
    for i, shift in enumerate(shifted):
        time_ms = START_MS + i
        if i % per_file == 0:
            if handle:
                handle.close()
            files += 1
            handle = open(os.path.join(out, f"capture-{time_ms:013d}-{files:06d}.jsonl"), "w")
        label, *features = rng.choice(training)
        if shift:
            features[SHIFTED_FEATURE] = repr(round(float(features[SHIFTED_FEATURE]) + SHIFT, 6))
        line = json.dumps(
            {
                "time_ms": time_ms,
                "endpoint": endpoint,
                "variant": "AllTraffic",
                "inference_id": "%032x" % rng.getrandbits(128),
                "request": {"content_type": "text/csv", "body": ",".join(features) + "\n"},
                "response": {"status": 200, "content_type": "text/csv", "body": label + "\n"},
            }
        )
        handle.write(line + "\n")
        size += len(line) + 1
    if handle:
        handle.close()
    print(json.dumps({"rows": rows, "files": files, "bytes": size}))


if __name__ == "__main__":
    main()
