"""A design's run as files a cluster runs unchanged: ``train_ddp.py`` (the design's model as plain PyTorch, its data
loading and a DistributedDataParallel loop, standing alone: no LayerStudio needed), the data as tensors beside it,
and the launch commands: ``torchrun`` on one machine and a Slurm batch script for several.

The model part is engine.export.python_source's, so the state_dict keys are the app's (the weights the script saves
load back in the window). The data are the run's tensors as the app keeps them (normalised; images enlarged and
samples reshaped per batch by the script, as the app does), written once, so the script needs neither the app's
loaders nor a download. The loop covers the
optimizer, learning rate, momentum, weight decay, loss, epochs, global batch size and seed; the rest of the
Training tab (schedules, mixed precision, early stopping, augmentation) stays in the app.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DataError, LayerStudioError
from engine.export import python_source
from engine.files import write_atomically, write_text_atomically
from engine.spec import NetworkSpec

SCRIPT_NAME = "train_ddp.py"
DATA_NAME = "train_ddp_data.pt"
SLURM_NAME = "train_ddp.sbatch"
OPTIMIZER_CLASSES = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                     "adadelta": "Adadelta", "adamax": "Adamax"}
LOSS_CLASSES = {"cross_entropy": "nn.CrossEntropyLoss(label_smoothing={label_smoothing!r})", "nll": "nn.NLLLoss()",
                "mse": "nn.MSELoss()", "l1": "nn.L1Loss()", "smooth_l1": "nn.SmoothL1Loss(beta={smooth_l1_beta!r})",
                "bce_with_logits": "nn.BCEWithLogitsLoss()", "bce": "nn.BCELoss()"}


@dataclass(frozen=True)
class LaunchFiles:
    """What ``write_launch_files`` wrote, and the command lines that start it."""

    script: Path
    data: Path
    slurm: Path
    one_machine: str
    cpu: str
    cluster: str
    nodes: int
    gpus_per_node: int

    def text(self) -> str:
        """The commands as the window shows them."""
        return (f"On one machine, one process per GPU:\n  {self.one_machine}\n"
                f"On the CPU, 2 processes:\n  {self.cpu}\n"
                f"On a Slurm cluster ({self.nodes} machines of {self.gpus_per_node} GPUs; the #SBATCH lines say "
                f"how many):\n  {self.cluster}")


def job_name(name: str) -> str:
    """A design's name as the script and Slurm may carry it: letters, digits, ``_ . -`` only (no code, no shell)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "layerstudio-run"


def one_machine_command(processes: int | str = "gpu") -> str:
    return f"torchrun --nproc-per-node {processes} {SCRIPT_NAME}"


def slurm_script(name: str, nodes: int, gpus_per_node: int) -> str:
    """An sbatch script running train_ddp.py on ``nodes`` machines with ``gpus_per_node`` processes each."""
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1          # one torchrun per machine; it starts the processes",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --time=01:00:00",
        "",
        "# the first machine of the job hosts the rendezvous",
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f'srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node {gpus_per_node} \\',
        '    --rdzv-id "$SLURM_JOB_ID" --rdzv-backend c10d --rdzv-endpoint "$head:29500" \\',
        f"    {SCRIPT_NAME}",
        "",
    ])


def ddp_script(spec: NetworkSpec, config, task: str, name: str, enlarge_to: int = 0) -> str:
    """The source of train_ddp.py for ``spec`` trained with ``config`` (a TrainConfig) on data of ``task`` whose
    stored images are enlarged to ``enlarge_to`` pixels a side per batch (0: taken as stored)."""
    name = job_name(name)
    model_part = python_source(spec).split('\nif __name__ == "__main__":')[0]
    header_imports = ("import torch", "from torch import nn", "from torch.nn import functional as F")
    model_lines = [line for line in model_part.splitlines()[1:] if line not in header_imports]
    loss = config.loss if config.loss != "auto" else ("cross_entropy" if task == "classification" else "mse")
    loss_source = LOSS_CLASSES[loss].format(label_smoothing=config.label_smoothing,
                                            smooth_l1_beta=config.smooth_l1_beta)
    options = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "sgd":
        options.update(momentum=config.momentum, nesterov=config.nesterov)
    if config.optimizer in ("adam", "adamw"):
        options["amsgrad"] = config.amsgrad
    optimizer = f"torch.optim.{OPTIMIZER_CLASSES[config.optimizer]}(parameters, " + \
        ", ".join(f"{key}={value!r}" for key, value in options.items()) + ")"
    header = f'''"""{name}: the LayerStudio design trained with DistributedDataParallel (written by LayerStudio).

One machine, one process per GPU:  {one_machine_command()}
On the CPU (gloo), 2 processes:    {one_machine_command(2)}
A Slurm cluster:                   sbatch {SLURM_NAME}

--batch-size is the batch of all processes together; each process takes its share. Rank 0 prints the figures
and saves the weights (a state_dict with the app's keys). Data: {DATA_NAME} beside this file, the tensors the
app trains on (images enlarged per batch).
"""
import argparse
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

SEED = {config.seed!r}
torch.manual_seed(SEED)  # every process builds the same initial weights
'''
    loop = f'''

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), {DATA_NAME!r})
TASK = {task!r}
ENLARGE_TO = {int(enlarge_to)!r}  # stored images are enlarged to this side per batch, as the app does (0: none)


def model_inputs(x):
    """Stored samples as the model takes them: enlarged (images), shaped as INPUT_SHAPE."""
    if ENLARGE_TO and tuple(x.shape[-2:]) != (ENLARGE_TO, ENLARGE_TO):
        x = F.interpolate(x, size=(ENLARGE_TO, ENLARGE_TO), mode="bilinear", align_corners=False, antialias=True)
    return x.reshape(x.shape[0], *INPUT_SHAPE)


def targets(xb, yb):
    return xb if TASK == "reconstruction" else yb  # an autoencoder's targets are its inputs


def make_optimizer(parameters):
    return {optimizer}


def make_loss():
    return {loss_source}


def mean_loss(model, loss_fn, x, y, device, batch_size):
    """Mean loss and accuracy (classification) of a split, in batches."""
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = model_inputs(x[start:start + batch_size].to(device))
            yb = targets(xb, y[start:start + batch_size].to(device))
            out = model(xb)
            total += float(loss_fn(out, yb)) * len(xb)
            if TASK == "classification":
                correct += int((out.argmax(1) == yb).sum())
    return total / len(x), correct / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default={config.epochs!r})
    parser.add_argument("--batch-size", type=int, default={config.batch_size!r}, help="of all processes together")
    parser.add_argument("--save", default="weights.pt", help="where rank 0 saves the trained state_dict")
    args = parser.parse_args()

    on_gpu = torch.cuda.is_available()
    dist.init_process_group("nccl" if on_gpu else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if on_gpu else torch.device("cpu")
    if on_gpu:
        torch.cuda.set_device(device)

    data = torch.load(DATA, weights_only=True)
    train = TensorDataset(data["train_x"], data["train_y"])
    sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=SEED)
    loader = DataLoader(train, batch_size=max(1, args.batch_size // world), sampler=sampler)
    net = DistributedDataParallel(model.to(device), device_ids=[device.index] if on_gpu else None)
    optimizer = make_optimizer(net.parameters())
    loss_fn = make_loss()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        net.train()
        figures = torch.zeros(2, device=device)  # loss sum, samples
        for xb, yb in loader:
            xb = model_inputs(xb.to(device))
            yb = targets(xb, yb.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
            figures += torch.stack([loss.detach() * len(xb), torch.tensor(float(len(xb)), device=device)])
        dist.all_reduce(figures)
        if rank == 0:
            line = f"epoch {{epoch + 1}}/{{args.epochs}}  train loss {{float(figures[0] / figures[1]):.4f}}"
            if len(data["val_x"]):
                model.eval()
                val_loss, val_acc = mean_loss(model, loss_fn, data["val_x"], data["val_y"], device, 256)
                line += f"  val loss {{val_loss:.4f}}" + (f"  val acc {{100 * val_acc:.1f}}%"
                                                          if TASK == "classification" else "")
            print(line, flush=True)
        dist.barrier()  # the others wait while rank 0 validates
    if rank == 0:
        torch.save(model.state_dict(), args.save)
        print(f"weights saved to {{args.save}}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''
    return header + "\n".join(model_lines).rstrip() + "\n" + loop


def data_tensors(spec: NetworkSpec, data) -> dict:
    """The run's train and validation tensors as stored (the script enlarges and reshapes each batch as the app
    does); DataError for data streamed from disk, TrainingError for data the design cannot take."""
    from engine.evaluation import input_reshape_needed

    if getattr(data, "streaming", False):
        raise DataError("this data set streams from disk and does not fit in memory as tensors, so it cannot be "
                        "written beside the launch script: lower the image size or the sample limit")
    input_reshape_needed(spec.input_shape, data.input_shape)  # the sizes must agree
    return {f"{split}_{part}": getattr(data, f"{split}_{part}") for split in ("train", "val") for part in "xy"}


def write_launch_files(folder: str | os.PathLike, spec: NetworkSpec, config, data, name: str = "layerstudio-run",
                       nodes: int = 2, gpus_per_node: int = 4) -> LaunchFiles:
    """Write train_ddp.py, its data and the Slurm script into ``folder`` (made if missing); each file atomically."""
    import torch

    folder = Path(folder)
    name = job_name(name)
    script = ddp_script(spec, config, data.task, name, getattr(data, "enlarge_to", 0))
    tensors = data_tensors(spec, data)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LayerStudioError(f"Cannot make the folder {folder} for the launch script "
                               f"({exc.strerror or exc}): choose another folder.") from None
    write_text_atomically(folder / SCRIPT_NAME, script, "launch script")
    write_atomically(folder / DATA_NAME, lambda handle: torch.save(tensors, handle), "launch script's data")
    write_text_atomically(folder / SLURM_NAME, slurm_script(name, nodes, gpus_per_node), "Slurm script")
    return LaunchFiles(folder / SCRIPT_NAME, folder / DATA_NAME, folder / SLURM_NAME, one_machine_command(),
                       one_machine_command(2), f"sbatch {SLURM_NAME}", nodes, gpus_per_node)
