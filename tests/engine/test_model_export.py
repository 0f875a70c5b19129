"""ONNX and TorchScript export (engine.model_export): every template leaves the app and computes what torch does, in
onnxruntime and through torch.jit.load, at any batch size; what an exporter cannot handle is named by layer path
before any work, and any other exporter failure is traced to its layer; nothing half-written is ever left."""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime
import pytest
import torch

import engine.model_export as model_export
from engine.build import build_model
from engine.cli import main
from engine.errors import SpecError, WeightsError
from engine.groups import group
from engine.io import save_weights
from engine.layers.registry import KINDS
from engine.model_export import ONNX_OPSET, export_onnx, export_torchscript
from engine.parameters import initial_model
from engine.shapes import analyze
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import list_templates, load_template
from tests.engine.group_designs import DESIGNS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def L(kind: str, id: str, **params) -> LayerSpec:  # noqa: N802, A002 - design shorthand
    return LayerSpec(kind, params, id)


def onnx_outputs(path, *batches: torch.Tensor) -> list[np.ndarray]:
    """What onnxruntime computes from the file for each batch."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (only,) = session.get_inputs()
    assert isinstance(only.shape[0], str)  # the batch axis is named, not fixed
    return [session.run(None, {only.name: batch.numpy()})[0] for batch in batches]


def torchscript_outputs(path, *batches: torch.Tensor) -> list[np.ndarray]:
    """What torch.jit.load's module computes from each batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return [module(batch).numpy() for batch in batches]


def expected(model: torch.nn.Module, batch: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(batch).numpy()


def random_batch(spec: NetworkSpec, size: int) -> torch.Tensor:
    return torch.randn(size, *spec.input_shape, generator=torch.Generator().manual_seed(size))


def every_kind() -> NetworkSpec:
    """One chain through every layer kind but Embedding (test_a_design_fed_token_indices...) and Group (the
    templates and the group designs), with settings away from their defaults."""
    return NetworkSpec((3, 12, 12), (
        L("Conv2d", "c1", out_channels=6, kernel_size=4, padding="same", groups=3),
        L("BatchNorm2d", "bn"), L("PReLU", "prelu", num_parameters="per_channel"), L("GroupNorm", "gn", num_groups=2),
        L("ConvTranspose2d", "up", out_channels=4, kernel_size=3, stride=2, padding=1, output_padding=1),
        L("MaxPool2d", "mp", kernel_size=3, stride=2, padding=1), L("AvgPool2d", "ap", kernel_size=3, stride=1,
                                                                       padding=1),
        L("AdaptiveMaxPool2d", "amp", output_size=6), L("AdaptiveAvgPool2d", "aap", output_size=3),
        L("Dropout2d", "d2", p=0.2), L("AlphaDropout", "ad", p=0.1), L("LayerNorm", "ln", normalized_dims=2),
        L("Hardswish", "hs"), L("ELU", "elu", alpha=0.5), L("GELU", "gelu", approximate="tanh"), L("SiLU", "silu"),
        L("ReLU6", "r6"), L("LeakyReLU", "lr", negative_slope=0.2), L("Identity", "id"),
        L("Flatten", "fl", start_dim=2), L("Permute", "perm", dims=(2, 1)),
        L("Conv1d", "c1d", out_channels=5, kernel_size=3, dilation=2, padding="full"),
        L("MaxPool1d", "mp1", kernel_size=2, stride=1), L("AvgPool1d", "ap1", kernel_size=2, stride=2, padding=1),
        L("BatchNorm1d", "bn1"), L("Permute", "perm2", dims=(2, 1)),
        L("GRU", "gru", hidden_size=6, bidirectional=True, output="all"),
        L("LSTM", "lstm", hidden_size=5, num_layers=2, dropout=0.2), L("Dropout", "do"),
        L("Linear", "fc", out_features=784), L("Unflatten", "unf", dim=1, sizes=(1, 28, 28)),
        L("Squeeze", "sq", dim=1), L("Reshape", "rs", shape=(-1, 4)), L("Sigmoid", "sig"), L("Tanh", "tanh"),
        L("ReLU", "relu"), L("Softmax", "sm", dim=-1), L("LogSoftmax", "lsm", dim=1),
    ))


DESIGNS_TO_EXPORT = {**{t.name: (lambda name=t.name: load_template(name)) for t in list_templates()}, **DESIGNS,
                     "every-kind": every_kind}


def test_the_designs_exported_hold_every_layer_kind():
    used = {layer.kind for make in DESIGNS_TO_EXPORT.values() for layer in make().all_layers()}
    assert {kind.name for kind in KINDS.values()} - used == {"Embedding"}  # a design of its own below


@pytest.mark.parametrize("name", list(DESIGNS_TO_EXPORT))
def test_every_template_exports_to_onnx_and_torchscript_computing_what_torch_does(name, tmp_path):
    spec = DESIGNS_TO_EXPORT[name]()
    model = build_model(spec)
    with torch.no_grad():  # running statistics away from their start, so BatchNorm's eval mode shows
        for buffer in model.buffers():
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    onnx, script = tmp_path / f"{name}.onnx", tmp_path / f"{name}.pt"
    summary = export_onnx(spec, onnx, model.state_dict())
    assert f"opset {ONNX_OPSET}" in summary
    export_torchscript(spec, script, model.state_dict())
    batches = [random_batch(spec, size) for size in (1, 3)]  # exported with 2 samples: the batch is free
    output_shape = analyze(spec).output_shape
    for batch, from_onnx, from_script in zip(batches, onnx_outputs(onnx, *batches),
                                             torchscript_outputs(script, *batches), strict=True):
        want = expected(model, batch)
        assert want.shape == (len(batch), *output_shape)
        np.testing.assert_allclose(from_onnx, want, rtol=0, atol=1e-4)
        np.testing.assert_allclose(from_script, want, rtol=0, atol=1e-5)


def test_without_weights_the_export_holds_those_a_run_starts_from_and_with_a_file_its_weights(tmp_path):
    spec = load_template("lenet")
    batch = random_batch(spec, 4)
    export_onnx(spec, tmp_path / "fresh.onnx")
    np.testing.assert_allclose(onnx_outputs(tmp_path / "fresh.onnx", batch)[0], expected(initial_model(spec), batch),
                               rtol=0, atol=1e-4)

    torch.manual_seed(7)
    trained = build_model(spec)
    for name in ("trained.pt", "trained.safetensors"):
        save_weights(trained, tmp_path / name)
        export_onnx(spec, tmp_path / "trained.onnx", tmp_path / name)
        export_torchscript(spec, tmp_path / "trained-script.pt", tmp_path / name)
        np.testing.assert_allclose(onnx_outputs(tmp_path / "trained.onnx", batch)[0], expected(trained, batch),
                                   rtol=0, atol=1e-4)
        np.testing.assert_allclose(torchscript_outputs(tmp_path / "trained-script.pt", batch)[0],
                                   expected(trained, batch), rtol=0, atol=1e-5)


def test_a_design_fed_token_indices_exports_with_an_integer_input(tmp_path):
    spec = NetworkSpec((12,), (L("Embedding", "embed", num_embeddings=50, embedding_dim=8),
                               L("LSTM", "lstm", hidden_size=6, bidirectional=True),
                               L("Linear", "head", out_features=3)))
    model = build_model(spec)
    export_onnx(spec, tmp_path / "tokens.onnx", model.state_dict())
    export_torchscript(spec, tmp_path / "tokens.pt", model.state_dict())
    tokens = torch.randint(0, 50, (5, 12), generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(onnx_outputs(tmp_path / "tokens.onnx", tokens)[0], expected(model, tokens), atol=1e-4)
    np.testing.assert_allclose(torchscript_outputs(tmp_path / "tokens.pt", tokens)[0], expected(model, tokens),
                               atol=1e-5)


@pytest.mark.parametrize("reader", [L("Reshape", "reader", shape=(-1,)), L("LSTM", "reader", hidden_size=3),
                                    L("GRU", "reader", hidden_size=3, bidirectional=True)])
def test_layers_that_read_the_batch_size_after_an_unflatten_take_any_batch_in_onnx(reader, tmp_path):
    """torch's exporter writes unflatten so that later reads of the batch size see the example's 2 (the stand-in
    in engine.model_export.ONNX_STAND_INS): without it, a batch of 3 fails or is silently regrouped."""
    spec = NetworkSpec((96,), (L("Unflatten", "unflatten", dim=1, sizes=(8, 12)), reader))
    model = build_model(spec)
    export_onnx(spec, tmp_path / "net.onnx", model.state_dict())
    batches = [random_batch(spec, size) for size in (1, 3)]
    for batch, got in zip(batches, onnx_outputs(tmp_path / "net.onnx", *batches), strict=True):
        np.testing.assert_allclose(got, expected(model, batch), rtol=0, atol=1e-4)


def pooled_in_a_branch(height: int, width: int, output_size: int) -> NetworkSpec:
    """An adaptive pooling two groups deep, at layer 1 › branch 2 › 1, beside a plain pooling of the same size."""
    return NetworkSpec((3, height, width), (
        L("Conv2d", "conv", out_channels=4, kernel_size=3, padding=1),
        group("branches", [L("MaxPool2d", "plain", kernel_size=3, stride=2),
                           group("sequence", [L("ReLU", "relu"), L("AdaptiveAvgPool2d", "pool",
                                                                   output_size=output_size)], id="inner")],
              id="fork"),
    ))


def dilated_same(padding) -> NetworkSpec:
    return NetworkSpec((3, 12, 12), (group("residual", [L("Conv2d", "dilated", out_channels=3, kernel_size=3,
                                                          dilation=2, padding=padding)], id="res"),))


def test_adaptive_pooling_that_onnx_cannot_write_is_named_by_its_path_and_nothing_is_written(tmp_path):
    target = tmp_path / "net.onnx"
    target.write_bytes(b"an earlier export")
    spec = pooled_in_a_branch(8, 7, 3)
    with pytest.raises(SpecError) as caught:
        export_onnx(spec, target)
    assert str(caught.value).startswith("Cannot export to ONNX: layer 1 › branch 2 › 1 (AdaptiveAvgPool2d 3) has an "
                                        "input of 8x7 and output_size 3")
    assert "set output_size to 1" in str(caught.value)
    assert target.read_bytes() == b"an earlier export" and len(list(tmp_path.iterdir())) == 1
    export_onnx(pooled_in_a_branch(6, 6, 2), target)  # 6x6 pooled to 2x2: a fixed window of 3
    assert target.read_bytes().startswith(b"\x08")  # an ONNX protobuf (ir_version first)
    # TorchScript has no such limit
    model = build_model(spec)
    export_torchscript(spec, tmp_path / "net.pt", model.state_dict())
    batch = random_batch(spec, 2)
    np.testing.assert_allclose(torchscript_outputs(tmp_path / "net.pt", batch)[0], expected(model, batch), atol=1e-5)


def test_padding_same_with_dilation_is_refused_with_the_number_that_exports(tmp_path):
    with pytest.raises(SpecError, match=r"layer 0 › 0 \(Conv2d .*\) has padding 'same' with dilation 2.*"
                                        r"set padding to 2, which gives the same output"):
        export_onnx(dilated_same("same"), tmp_path / "net.onnx")
    assert not (tmp_path / "net.onnx").exists()
    same, fixed = build_model(dilated_same("same")), build_model(dilated_same(2))
    fixed.load_state_dict(same.state_dict())
    export_onnx(dilated_same(2), tmp_path / "net.onnx", same.state_dict())
    batch = random_batch(dilated_same(2), 3)
    np.testing.assert_allclose(onnx_outputs(tmp_path / "net.onnx", batch)[0], expected(same, batch), atol=1e-4)


def test_the_declared_limits_are_real_and_without_them_the_failure_is_still_named_by_layer(tmp_path, monkeypatch):
    """With LIMITS emptied, the exporter itself fails on the adaptive pooling (the catch-all names the same layer),
    and the dilated 'same' convolution writes a file that onnxruntime cannot run."""
    monkeypatch.setattr(model_export, "LIMITS", ())
    with pytest.raises(SpecError) as caught:
        export_onnx(pooled_in_a_branch(8, 7, 3), tmp_path / "pool.onnx")
    assert str(caught.value) == ("Cannot export to ONNX: layer 1 › branch 2 › 1 (AdaptiveAvgPool2d 3) stops the "
                                 "exporter (ONNX export of operator adaptive_avg_pool2d, output size that are not "
                                 "factor of input size)")
    assert not (tmp_path / "pool.onnx").exists()

    export_onnx(dilated_same("same"), tmp_path / "dilated.onnx")
    with pytest.raises(Exception, match="Dilation not supported"):
        onnx_outputs(tmp_path / "dilated.onnx", random_batch(dilated_same("same"), 2))


def test_a_failure_in_a_later_copy_of_a_repeated_group_is_named_by_its_layer(tmp_path, capfd):
    """The analysis lists a repeated group's first copy only: there the pooling's input is 6x6, in the second copy
    2x2, which the declared limit cannot see; the exporter's failure is traced to the layer all the same."""
    spec = NetworkSpec((3, 12, 12), (
        L("Conv2d", "conv", out_channels=4, padding=1),
        group("sequence", [L("Conv2d", "down", out_channels=4, stride=2, padding=1),
                           L("AdaptiveAvgPool2d", "pool", output_size=3)], id="twice", repeat=2),
    ))
    with pytest.raises(SpecError) as caught:
        export_onnx(spec, tmp_path / "net.onnx")
    assert str(caught.value) == ("Cannot export to ONNX: layer 1 › 1 (AdaptiveAvgPool2d 3) stops the exporter (ONNX "
                                 "export of operator adaptive_avg_pool2d, output size that are not factor of input "
                                 "size)")
    assert capfd.readouterr().out == ""  # the graph torch prints on a failure stays out of stdout
    assert not (tmp_path / "net.onnx").exists()


def test_weights_that_do_not_fit_are_refused_before_anything_is_written(tmp_path):
    save_weights(build_model(load_template("mlp")), tmp_path / "mlp.pt")
    with pytest.raises(WeightsError):
        export_torchscript(load_template("lenet"), tmp_path / "lenet.pt", tmp_path / "mlp.pt")
    assert not (tmp_path / "lenet.pt").exists()


def test_weights_too_large_for_one_onnx_file_are_refused_before_the_model_is_built(tmp_path):
    spec = NetworkSpec((1000,), (L("Linear", "huge", out_features=600_000),))  # 2.4 GB of float32
    with pytest.raises(SpecError, match=r"the weights take 2\.4 GB.*export TorchScript"):
        export_onnx(spec, tmp_path / "huge.onnx")


def test_targets_and_designs_are_checked_first(tmp_path):
    spec = load_template("lenet")
    with pytest.raises(SpecError, match="name the ONNX model .onnx"):
        export_onnx(spec, tmp_path / "net.pt")
    with pytest.raises(SpecError, match="folder .* does not exist"):
        export_torchscript(spec, tmp_path / "missing" / "net.pt")
    with pytest.raises(SpecError, match="opset 9 cannot be written"):
        export_onnx(spec, tmp_path / "net.onnx", opset=9)
    with pytest.raises(SpecError, match=r"layer 5 \(Conv2d\)"):
        export_onnx(spec.with_param("conv3", "kernel_size", 9), tmp_path / "net.onnx")
    assert not list(tmp_path.iterdir())


def test_cli_exports_every_format_at_once_with_the_weights_and_names_what_it_cannot(tmp_path, capsys):
    spec = load_template("softmax-regression")
    torch.manual_seed(3)
    trained = build_model(spec)
    save_weights(trained, tmp_path / "w.pt")
    files = [tmp_path / name for name in ("net.py", "net.onnx", "net.pt")]
    assert main(["export", "softmax-regression", "--python", str(files[0]), "--onnx", str(files[1]),
                 "--torchscript", str(files[2]), "--weights", str(tmp_path / "w.pt")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith(f"Wrote {path}") for line, path in zip(out, files, strict=True))
    assert out[1] == (f"Wrote {files[1]}: ONNX opset {ONNX_OPSET}: input 'input' Nx1x28x28, output 'output' Nx10, "
                      f"any batch size N; with the weights of {tmp_path / 'w.pt'}")
    batch = random_batch(spec, 2)
    np.testing.assert_allclose(onnx_outputs(files[1], batch)[0], expected(trained, batch), atol=1e-4)

    design = tmp_path / "pooled.json"
    design.write_text(pooled_in_a_branch(8, 7, 3).to_json())
    for argv in (["export", str(design), "--onnx", str(tmp_path / "pooled.onnx")],
                 ["export", "lenet", "--python", str(tmp_path / "x.py"), "--weights", str(tmp_path / "w.pt")],
                 ["export", "lenet"],
                 ["export", "lenet", "--torchscript", str(tmp_path / "x.onnx")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "pooled.onnx").exists() and not (tmp_path / "x.py").exists()
