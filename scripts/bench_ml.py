"""The scikit-learn and onnxruntime side of `mimir-aip bench ml`.

Usage: bench_ml.py DATA_DIR [--rows N] [--features N] [--seed N] [--jobs N]

For each data set (a make_classification set of --rows x --features, and
scikit-learn's breast-cancer set) it splits 75/25 with the seed, writes the
two splits as NDJSON records (`f0`..`fN`, `label`) for mimir-ml to train
and score on the very same rows, then times scikit-learn's
RandomForestClassifier(n_estimators=100, n_jobs=--jobs) and
LogisticRegression: fit, predict on the test split, held-out accuracy.
The logistic regression is exported to ONNX (skl2onnx, zipmap off), and
onnxruntime's predictions of the test split are timed and written, so the
Rust side can import the same file and compare.

Features are float32 values (written as the doubles they widen to), so
scikit-learn, onnxruntime and mimir-ml all see identical inputs.

Prints one JSON object (and writes DATA_DIR/results.json):
  {"python", "sklearn", "onnxruntime", "cores", "jobs",
   "datasets": {name: {"train": path, "test": path, "train_rows",
     "test_rows", "features",
     "models": {"random_forest"|"logistic_regression":
                {"fit_seconds", "predict_seconds", "accuracy", "rows_per_second"}},
     "onnx": {"file", "expected", "predict_seconds", "rows_per_second"}}}}
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import onnxruntime as ort
import sklearn
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

# ai.onnx.ml 3 holds the linear and tree operators as tract knows them.
OPSET = {"": 17, "ai.onnx.ml": 3}
# Timed repeats of each prediction; the best is reported.
REPEATS = 5


def write_ndjson(path, x, y):
    with open(path, "w") as f:
        for row, label in zip(x.tolist(), y.tolist()):
            record = {f"f{i}": v for i, v in enumerate(row)}
            record["label"] = int(label)
            f.write(json.dumps(record))
            f.write("\n")


def best_of(fn):
    best = float("inf")
    result = None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def bench_model(model, x_train, y_train, x_test, y_test):
    started = time.perf_counter()
    model.fit(x_train, y_train)
    fit = time.perf_counter() - started
    predict, predicted = best_of(lambda: model.predict(x_test))
    return {
        "fit_seconds": fit,
        "predict_seconds": predict,
        "accuracy": float(accuracy_score(y_test, predicted)),
        "rows_per_second": len(x_test) / predict,
    }


def bench_onnx(model, x_train, x_test, out_dir, name):
    onnx_model = to_onnx(
        model, x_train[:1], target_opset=OPSET, options={id(model): {"zipmap": False}}
    )
    path = os.path.join(out_dir, f"{name}_logistic.onnx")
    with open(path, "wb") as f:
        f.write(onnx_model.SerializeToString())
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    seconds, (labels, probabilities) = best_of(lambda: session.run(None, {input_name: x_test}))
    expected = os.path.join(out_dir, f"{name}_onnxruntime.json")
    with open(expected, "w") as f:
        json.dump(
            {
                "labels": [int(v) for v in labels.tolist()],
                "probabilities": probabilities.astype(np.float64).tolist(),
            },
            f,
        )
    return {
        "file": path,
        "expected": expected,
        "predict_seconds": seconds,
        "rows_per_second": len(x_test) / seconds,
    }


def bench_dataset(name, x, y, args):
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    train_path = os.path.join(args.data_dir, f"{name}_train.ndjson")
    test_path = os.path.join(args.data_dir, f"{name}_test.ndjson")
    write_ndjson(train_path, x_train, y_train)
    write_ndjson(test_path, x_test, y_test)
    forest = RandomForestClassifier(n_estimators=100, n_jobs=args.jobs, random_state=args.seed)
    logistic = LogisticRegression(max_iter=1000)
    models = {
        "random_forest": bench_model(forest, x_train, y_train, x_test, y_test),
        "logistic_regression": bench_model(logistic, x_train, y_train, x_test, y_test),
    }
    return {
        "train": train_path,
        "test": test_path,
        "train_rows": len(x_train),
        "test_rows": len(x_test),
        "features": int(x.shape[1]),
        "models": models,
        "onnx": bench_onnx(logistic, x_train, x_test, args.data_dir, name),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)

    x, y = make_classification(
        n_samples=args.rows,
        n_features=args.features,
        n_informative=args.features // 2,
        n_redundant=args.features // 4,
        random_state=args.seed,
    )
    cancer = load_breast_cancer()
    results = {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "onnxruntime": ort.__version__,
        "cores": os.cpu_count(),
        "jobs": args.jobs,
        "datasets": {
            "synthetic": bench_dataset("synthetic", x, y, args),
            "breast_cancer": bench_dataset("breast_cancer", cancer.data, cancer.target, args),
        },
    }
    with open(os.path.join(args.data_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
