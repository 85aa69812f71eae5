"""Builds the real ONNX models the mimir-ml ONNX tests load, with
scikit-learn and skl2onnx, and writes what onnxruntime predicts for them.

Usage: python onnx_models.py OUT_DIR

Writes OUT_DIR/models.json:
  {"models": [{"name", "file", "n_features", "rows": [[...]],
               "labels"?: [...], "probabilities"?: [[...]], "values"?: [...]}]}
and one OUT_DIR/<name>.onnx per model, plus two models to refuse:
no_inputs.onnx (a constant) and zipmap.onnx (probabilities as maps). Rows are float32 values written as
the exact doubles they widen to, so both runtimes see the same inputs.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split

# ai.onnx.ml 3 is the opset of the tree and linear operators tract knows.
OPSET = {"": 17, "ai.onnx.ml": 3}
SEED = 7


def convert(model, x):
    return to_onnx(
        model,
        x[:1],
        target_opset=OPSET,
        options={id(model): {"zipmap": False}} if hasattr(model, "classes_") else None,
    )


def run(onnx_model, x):
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})


def entry(name, onnx_model, x, out_dir):
    path = os.path.join(out_dir, name + ".onnx")
    with open(path, "wb") as f:
        f.write(onnx_model.SerializeToString())
    outputs = run(onnx_model, x)
    item = {"name": name, "file": path, "n_features": int(x.shape[1]), "rows": x.tolist()}
    if len(outputs) == 2:
        labels, probabilities = outputs
        item["labels"] = [v if isinstance(v, str) else int(v) for v in labels.tolist()]
        item["probabilities"] = probabilities.astype(np.float64).tolist()
    else:
        item["values"] = outputs[0].astype(np.float64).reshape(-1).tolist()
    return item


def tiny_network(x):
    """A one-layer network built by hand: sigmoid(x·w + b), one float out,
    its weights scaled to the features so that its outputs spread."""
    n_features = x.shape[1]
    rng = np.random.default_rng(SEED)
    scale = x.std(axis=0) * np.sqrt(n_features)
    w = (rng.normal(size=n_features) / scale).astype(np.float32).reshape(n_features, 1)
    b = np.array([-(x.mean(axis=0) @ w)[0]], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.reshape(-1)),
            helper.make_tensor("b", TensorProto.FLOAT, b.shape, b),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def no_inputs():
    """A valid model that takes nothing (a constant): not one we can feed."""
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0]))],
        "constant",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    out_dir = sys.argv[1]
    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    y = data.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED)

    models = []
    logistic = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    models.append(entry("logistic", convert(logistic, x_train), x_test, out_dir))

    names = np.array(data.target_names)
    named = LogisticRegression(max_iter=5000).fit(x_train, names[y_train])
    models.append(entry("logistic_named", convert(named, x_train), x_test, out_dir))

    forest = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=SEED).fit(x_train, y_train)
    models.append(entry("forest", convert(forest, x_train), x_test, out_dir))

    # Regress "mean area" (column 3) from the other 29 features.
    area = 3
    rx_train = np.delete(x_train, area, axis=1)
    rx_test = np.delete(x_test, area, axis=1)
    linear = LinearRegression().fit(rx_train, x_train[:, area])
    models.append(entry("linear", convert(linear, rx_train), rx_test, out_dir))

    models.append(entry("tiny", tiny_network(x_train), x_test, out_dir))

    # The default conversion answers probabilities as a sequence of maps
    # (zipmap), which mimir-ml refuses by name.
    path = os.path.join(out_dir, "zipmap.onnx")
    with open(path, "wb") as f:
        f.write(to_onnx(logistic, x_train[:1], target_opset=OPSET).SerializeToString())

    with open(os.path.join(out_dir, "no_inputs.onnx"), "wb") as f:
        f.write(no_inputs().SerializeToString())

    with open(os.path.join(out_dir, "models.json"), "w") as f:
        json.dump({"models": models}, f)


if __name__ == "__main__":
    main()
