"""The modules a group builds (nn.Sequential, Residual, Branches) export to ONNX, and onnxruntime computes what
torch does: a design made in the app can leave it for any ONNX runtime."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest
import torch

from engine.build import build_model
from engine.shapes import analyze
from tests.engine.group_designs import DESIGNS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["resnet", "googlenet", "every"])
def test_group_designs_export_to_onnx_and_run_the_same_in_onnxruntime(name, tmp_path):
    spec = DESIGNS[name]()
    torch.manual_seed(0)
    model = build_model(spec).eval()
    x = torch.randn(2, *spec.input_shape)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # dynamo=False: the TorchScript exporter takes about a second here, the dynamo one several
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (x, torch.randn(5, *spec.input_shape)):  # another batch size too: the batch axis is free
        (y,) = session.run(None, {"x": batch.numpy()})
        with torch.no_grad():
            expected = model(batch).numpy()
        assert y.shape == expected.shape == (len(batch), *analyze(spec).output_shape)
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)
