"""Built-in images held at their own size and enlarged per batch (engine.data.enlarge, DataBundle.model_inputs):
the same values the up-front enlargement gave, a fraction of the memory, and every consumer (training,
augmentation, evaluation, predict, preview, the memory guard) seeing the images at the size the model takes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from engine.data import NATIVE_IMAGE_SIZES, DataConfig, load_data, read_idx
from engine.data.enlarge import enlarge, enlarged_moments
from engine.errors import TrainingError
from engine.evaluation import evaluate_model
from engine.memory import (
    check_data_fits,
    check_training_fits,
    estimate_data_bytes,
    estimate_training_bytes,
    format_bytes,
)
from engine.predict import Predictor
from engine.preview import preview_data
from engine.shapes import analyze
from engine.spec import LayerSpec, NetworkSpec
from engine.templates import list_templates, load_design
from engine.training import TrainConfig, Trainer
from resources import MNIST_SAMPLE
from tests.digits import write_digit
from tests.engine.test_data import write_idx

CHUNK = 250   # images enlarged at a time by the reference (the whole sample at 224 would be 1 GB of float32)


def up_front(images: torch.Tensor, side: int) -> torch.Tensor:
    """The removed up-front path: uint8 (N, H, W) to float in [0, 1], then enlarged (bilinear, antialias)."""
    x = images.unsqueeze(1).to(torch.float32).div(255)
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def enlarged_templates() -> list[str]:
    """The templates whose own data enlarges a built-in dataset (AlexNet, VGG, NiN at 224; GoogLeNet at 96)."""
    names = []
    for info in list_templates():
        data = load_design(info.name)[1].get("data") or {}
        if data.get("source") in NATIVE_IMAGE_SIZES and data.get("image_size", 0) > NATIVE_IMAGE_SIZES[data["source"]]:
            names.append(info.name)
    return names


def test_enlarging_normalised_images_per_batch_gives_what_enlarging_first_gave():
    bundle = load_data(DataConfig(image_size=224, val_fraction=0))     # the whole sample, in file order
    train = read_idx(MNIST_SAMPLE / "train-images-idx3-ubyte.gz")
    test = read_idx(MNIST_SAMPLE / "t10k-images-idx3-ubyte.gz")
    total = squares = 0.0                   # the statistics of the enlarged training images, as before
    for start in range(0, len(train), CHUNK):
        x = up_front(train[start:start + CHUNK], 224).double()
        total, squares = total + x.sum().item(), squares + x.square().sum().item()
    count = len(train) * 224 * 224
    mean = total / count
    std = (squares / count - mean ** 2) ** 0.5
    assert bundle.mean[0] == pytest.approx(mean, abs=1e-7) and bundle.std[0] == pytest.approx(std, abs=1e-7)
    assert abs(std - 0.3081) > 0.01         # not the 28-px statistics: the enlarged images are smoother

    worst = 0.0
    for start in range(0, len(test), CHUNK):
        before = (up_front(test[start:start + CHUNK], 224) - mean) / std
        now = bundle.model_inputs(bundle.test_x[start:start + CHUNK])
        assert now.shape == before.shape == (len(before), 1, 224, 224)
        worst = max(worst, (now - before).abs().max().item())
    print(f"largest difference per batch vs up front: {worst:.2e}")
    assert worst < 5e-6


def test_the_moments_of_enlarged_images_are_those_of_the_enlarged_images():
    images = torch.randint(0, 256, (40, 3, 32, 17), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for side in (33, 65, 224):
        mean, std = enlarged_moments(images, side)
        real_std, real_mean = torch.std_mean(enlarge(images.double() / 255, side), dim=(0, 2, 3), correction=0)
        assert torch.allclose(mean, real_mean, atol=1e-12) and torch.allclose(std, real_std, atol=1e-12)
    square = images[..., :17, :]
    assert enlarge(images, 0) is images and enlarge(square, 17) is square     # nothing to do: the same tensor


def test_a_224_px_template_bundle_holds_its_images_at_their_own_size():
    spec, design = load_design("alexnet")
    bundle = load_data(DataConfig.from_dict({**design["data"], "source": "mnist-sample", "download": False}))
    assert bundle.input_shape == tuple(spec.input_shape) == (1, 224, 224) and bundle.enlarge_to == 224
    assert bundle.summary() == ("MNIST sample: 3600 train / 400 val / 1000 test, 1x224x224 enlarged from 28x28, "
                                "10 classes")
    held = sum(t.nbytes for t in (bundle.train_x, bundle.val_x, bundle.test_x))
    assert held == 5000 * 28 * 28 * 4          # 15.7 MB, where the enlarged sample held 1.0 GB
    assert bundle.model_inputs(bundle.train_x[:3]).shape == (3, 1, 224, 224)


@pytest.fixture(scope="module")
def fashion_mnist(tmp_path_factory):
    """Loads Fashion-MNIST-sized files (60,000 + 10,000 random images, written once) at a template's data
    settings; bundles with the same settings are loaded once."""
    root = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for name, shape in (("train-images-idx3-ubyte", (60000, 28, 28)), ("train-labels-idx1-ubyte", (60000,)),
                        ("t10k-images-idx3-ubyte", (10000, 28, 28)), ("t10k-labels-idx1-ubyte", (10000,))):
        write_idx(root / "FashionMNIST" / "raw" / name, rng.integers(0, 10 if len(shape) == 1 else 256, shape,
                                                                     dtype=np.uint8))
    loaded = {}

    def load(settings: dict):
        config = DataConfig.from_dict({**settings, "root": str(root), "download": False})
        key = repr(config.to_dict())
        if key not in loaded:
            loaded[key] = load_data(config)
        return loaded[key]

    return load


@pytest.mark.parametrize("template", enlarged_templates())
def test_the_enlarged_templates_train_on_their_own_dataset_on_a_16_gb_machine(template, fashion_mnist):
    """The data check (RAM) and the training check on a 16 GB GPU, where the dataset's tensors count too: the
    data as stored (28x28) plus one step at the model's size, its enlarged input batch included."""
    spec, design = load_design(template)
    config = DataConfig.from_dict(design["data"])
    assert estimate_data_bytes(config) < 1e9                       # Fashion-MNIST at 224: 0.3 GB, was 14 GB
    check_data_fits(config, available=16e9)
    check_data_fits(config, available=1e9)

    data = fashion_mnist(design["data"])
    side = config.image_size
    assert data.summary().startswith(f"Fashion-MNIST: 54000 train / 6000 val / 10000 test, 1x{side}x{side} "
                                     f"enlarged from 28x28")
    stored = sum(t.nbytes for t in (data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y))
    assert stored < 250e6                                          # 70,000 x 1x28x28 float32 and their labels
    training = TrainConfig.from_dict(design.get("training") or {})
    analysis = analyze(spec)
    gpu = torch.device("cuda:0")
    check_training_fits(analysis, training, gpu, data, available=16e9)
    check_training_fits(analysis, training, torch.device("cpu"), data, available=16e9)
    step = estimate_training_bytes(analysis, training.batch_size, training.optimizer)   # at the model's size
    with pytest.raises(TrainingError, match=f"needs about {format_bytes(step + stored)} but the GPU cuda:0 has 1 kB"):
        check_training_fits(analysis, training, gpu, data, available=1000)


def test_alexnet_trains_at_224_and_evaluation_and_predict_see_the_enlarged_images(tmp_path):
    spec, _ = load_design("alexnet")
    data = load_data(DataConfig(image_size=224, limit=32, val_fraction=0.25))
    trainer = Trainer(spec, data, TrainConfig(epochs=1, batch_size=8, device="cpu", seed=0))
    finished = trainer.run()
    assert finished.reason == "completed", finished.message
    assert trainer.global_step == 3 and np.isfinite(trainer.history["train_loss"][0])

    model = trainer.model.eval()
    with torch.no_grad():
        out = model(data.model_inputs(data.val_x))
    loss = F.cross_entropy(out, data.val_y).item()
    evaluation = trainer.evaluate("val")
    assert evaluation.predicted == out.argmax(1).tolist()
    assert evaluation.loss == pytest.approx(loss, rel=1e-5)
    again = evaluate_model(spec, model, data, "val", batch_size=3)       # the Evaluate button's path
    assert again.predicted == evaluation.predicted and again.loss == pytest.approx(loss, rel=1e-5)

    predictor = Predictor(spec, model, data)
    for index in (0, 5):
        path = tmp_path / f"{index}.png"
        write_digit(path, index)
        with torch.no_grad():
            expected = torch.softmax(model(data.model_inputs(data.test_x[index:index + 1])), dim=1)[0]
        result = predictor.image(path)
        assert result.scores == pytest.approx(expected.tolist(), abs=1e-6)


def tiny(side: int, *layers: LayerSpec) -> NetworkSpec:
    return NetworkSpec((1, side, side), (LayerSpec("Flatten"), *layers,
                                         LayerSpec("Linear", {"out_features": 10})))


def test_crops_shift_the_enlarged_images_by_whole_pixels_of_the_models_size():
    """Augmentation acts after the enlargement, as it did when the data was enlarged first: each sample the
    model is given is an enlarged training image moved by at most the padding, in pixels at 36x36."""
    data = load_data(DataConfig(image_size=36, limit=24, val_fraction=0, augment_crop_padding=2))
    seen = []
    trainer = Trainer(tiny(36), data, TrainConfig(epochs=1, batch_size=8, device="cpu", seed=0))
    trainer.model.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    assert trainer.run().reason == "completed"
    enlarged = data.model_inputs(data.train_x)
    padded = F.pad(enlarged, (2, 2, 2, 2))
    shifts = torch.stack([padded[:, :, dy:dy + 36, dx:dx + 36] for dy in range(5) for dx in range(5)], dim=1)
    batches = torch.cat(seen[:3])
    assert batches.shape == (24, 1, 36, 36)
    for sample in batches:
        distance = (shifts - sample).abs().amax(dim=(2, 3, 4))        # every training image, every shift
        assert distance.min().item() < 1e-6

    preview = preview_data(data, per_class=2, samples=2, versions=3)
    assert preview.groups[0][1].shape[1:] == (36, 36, 1) and preview.augmented.shape == (2, 3, 36, 36, 1)
    assert "1x36x36 enlarged from 28x28" in preview.summary


def test_streamed_and_reconstruction_runs_take_the_enlarged_images():
    config = {"image_size": 36, "limit": 64, "val_fraction": 0.25, "seed": 0}
    train = TrainConfig(epochs=1, batch_size=16, device="cpu", seed=0)
    losses = []
    for stream in (False, True):
        trainer = Trainer(tiny(36), load_data(DataConfig(stream=stream, **config)), train)
        assert trainer.run().reason == "completed"
        losses.append(trainer.history["train_loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)        # the streamed batches are enlarged the same way

    data = load_data(DataConfig(task="reconstruction", **config))
    spec = NetworkSpec((1, 36, 36), (LayerSpec("Flatten"), LayerSpec("Linear", {"out_features": 36 * 36}),
                                     LayerSpec("Sigmoid"), LayerSpec("Unflatten", {"sizes": [1, 36, 36]})))
    trainer = Trainer(spec, data, TrainConfig(epochs=1, batch_size=16, device="cpu", seed=0, loss="mse"))
    assert trainer.run().reason == "completed"
    target = data.model_inputs(data.val_x)
    with torch.no_grad():
        loss = F.mse_loss(trainer.model.eval()(target), target).item()
    assert trainer.evaluate("val").loss == pytest.approx(loss, rel=1e-5)
