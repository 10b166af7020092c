"""Writes `count` small built-in models (a decision tree each) as <folder>/model-NNNNN.tar.gz, as SageMaker packs them."""
import io
import json
import random
import sys
import tarfile

folder, count = sys.argv[1], int(sys.argv[2])
rng = random.Random(0)
for i in range(count):
    # A depth-3 tree with its own thresholds and labels, so every model answers differently.
    classes = [f"m{i}-a", f"m{i}-b"]
    nodes = [{"f": 2, "t": round(rng.uniform(1, 6), 2), "l": 1, "r": 2, "v": 0.0}]
    nodes += [{"f": 3, "t": round(rng.uniform(0.1, 2.5), 2), "l": 3, "r": 4, "v": 0.0},
              {"f": 0, "t": round(rng.uniform(4, 8), 2), "l": 5, "r": 6, "v": 1.0}]
    nodes += [{"f": -1, "t": 0.0, "l": 0, "r": 0, "v": float(rng.randrange(2))} for _ in range(4)]
    model = {"format": 1, "algorithm": "decision-tree", "task": "classification", "n_features": 4,
             "classes": classes, "trees": [{"nodes": nodes}]}
    data = json.dumps(model).encode()
    with tarfile.open(f"{folder}/model-{i:05}.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
print(len(data))
