"""Chapter 7's training experiments: copying, which every attention learns, and associative recall
against the number of key-value pairs, where a linear-attention state of fixed size runs out.

    python -m linattn.learn.experiments --help
    python -m linattn.learn.experiments --size full      # regenerates book/data/{copy,recall}_full.json

Each run builds a fresh TinyTransformer (seeded), trains it on fresh seeded batches and scores it on
a batch drawn with a separate seed. A recall model meant for P pairs trains on a mixture of 1 .. P
pairs (short sequences teach the lookup quickly) and is tested on exactly P.
"""
import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from ..feature_maps import FEATURE_MAPS, PerformerFeatures, get_feature_map
from ..lab.device import choose_device
from ..lab.results import save_results
from .model import TinyTransformer
from .tasks import CopyTask, RecallTask, TaskMixture
from .training import evaluate, tqdm, train

PERFORMER_FEATURES_PER_DIM = 4
DATA_DIR = Path("book") / "data"  # relative to the repository root, where the command runs


def model_kwargs(name, head_dim):
    """TinyTransformer's attention arguments for 'softmax' or 'linear-<feature map>' (elu, relu, poly2, performer)."""
    if name == "softmax":
        return {"attention": "softmax"}
    kind, _, feature_map = name.partition("-")
    if kind == "linear" and feature_map == "performer":
        features = PerformerFeatures(head_dim, PERFORMER_FEATURES_PER_DIM * head_dim)
        return {"attention": "linear", "feature_map": features}
    if kind == "linear" and feature_map in FEATURE_MAPS:
        return {"attention": "linear", "feature_map": feature_map}
    raise ValueError(f"model must be 'softmax' or 'linear-' + one of {sorted(FEATURE_MAPS) + ['performer']}, "
                     f"got {name!r}")


def state_rows(name, head_dim):
    """D, the rows of a linear model's state S = sum_j phi(k_j) v_j^T per head (None for softmax)."""
    kwargs = model_kwargs(name, head_dim)
    if kwargs["attention"] == "softmax":
        return None
    return get_feature_map(kwargs["feature_map"])(torch.zeros(1, head_dim)).shape[-1]


@dataclass(frozen=True)
class Settings:
    """Everything that decides a result; stored beside it."""
    steps: int                      # recall training steps per run
    copy_steps: int                 # copy training steps per run
    pairs: tuple = (2, 4, 8, 16, 32, 64)
    seeds: tuple = (0,)
    models: tuple = ("softmax", "linear-elu", "linear-poly2")
    copy_models: tuple = ("softmax", "linear-elu")
    batch_size: int = 32
    lr: float = 1e-2
    d_model: int = 64
    n_heads: int = 1
    head_dim: int = 16
    num_keys: int = 64
    num_values: int = 64
    copy_length: int = 16
    num_symbols: int = 16
    eval_batch: int = 256
    loss_points: int = 100          # loss curves are stored as this many window means
    threads: int = 1

    def as_dict(self):
        return dataclasses.asdict(self)


SIZES = {
    "ci": Settings(steps=300, copy_steps=150, pairs=(4,), models=("softmax", "linear-elu"), copy_length=8),
    "cpu": Settings(steps=1000, copy_steps=400, pairs=(4, 8, 16)),
    "full": Settings(steps=2000, copy_steps=600, seeds=(0, 1)),
}


def sizes_for_profile(name):
    """The live run a size profile affords: ci and cpu as named; a GPU runs the full sweep with one seed."""
    if name == "gpu":
        return dataclasses.replace(SIZES["full"], seeds=(0,))
    if name not in SIZES:
        raise ValueError(f"no Chapter 7 sizes for profile {name!r}; choose one of {sorted(SIZES)} or 'gpu'")
    return SIZES[name]


def build_model(name, task, settings, seed):
    torch.manual_seed(seed)
    return TinyTransformer(task.vocab_size, task.seq_len, d_model=settings.d_model, n_heads=settings.n_heads,
                           head_dim=settings.head_dim, **model_kwargs(name, settings.head_dim))


def loss_curve(losses, points):
    """Means over `points` equal windows of steps: (the last step of each window, the mean loss)."""
    size = max(1, math.ceil(len(losses) / points))
    steps, means = [], []
    for start in range(0, len(losses), size):
        window = losses[start:start + size]
        steps.append(start + len(window))
        means.append(sum(window) / len(window))
    return steps, means


def run(name, train_task, test_task, settings, *, steps, seed=0, device="cpu"):
    """Train model `name` on `train_task`, test it on `test_task`; a JSON-ready record."""
    model = build_model(name, train_task, settings, seed)
    result = train(model, train_task, steps=steps, batch_size=settings.batch_size, lr=settings.lr, seed=seed,
                   device=device, threads=settings.threads)
    accuracy = evaluate(model, test_task, batch_size=settings.eval_batch, device=device, threads=settings.threads)
    loss_steps, losses = loss_curve(result.losses, settings.loss_points)
    return {"model": name, "seed": seed, "accuracy": accuracy, "seconds": result.seconds,
            "state_rows": state_rows(name, settings.head_dim), "loss_steps": loss_steps, "losses": losses}


def recall_tasks(num_pairs, settings):
    """The training mixture (1 .. num_pairs pairs) and the test task (exactly num_pairs)."""
    make = lambda p: RecallTask(p, num_keys=settings.num_keys, num_values=settings.num_values)  # noqa: E731
    return TaskMixture(tuple(make(p) for p in range(1, num_pairs + 1))), make(num_pairs)


def run_recall(name, num_pairs, settings, *, seed=0, device="cpu"):
    mixture, test = recall_tasks(num_pairs, settings)
    record = run(name, mixture, test, settings, steps=settings.steps, seed=seed, device=device)
    return {"pairs": num_pairs, **record}


def run_copy(name, settings, *, seed=0, device="cpu"):
    task = CopyTask(settings.copy_length, settings.num_symbols)
    record = run(name, task, task, settings, steps=settings.copy_steps, seed=seed, device=device)
    return {"length": settings.copy_length, **record}


def recall_sweep(settings, *, device="cpu", progress=True):
    jobs = [(p, name, seed) for p in settings.pairs for name in settings.models for seed in settings.seeds]
    return [run_recall(name, p, settings, seed=seed, device=device)
            for p, name, seed in tqdm(jobs, desc="recall", disable=not progress)]


def copy_sweep(settings, *, device="cpu", progress=True):
    jobs = [(name, seed) for name in settings.copy_models for seed in settings.seeds]
    return [run_copy(name, settings, seed=seed, device=device)
            for name, seed in tqdm(jobs, desc="copy", disable=not progress)]


class Accuracy(NamedTuple):
    """One model at one number of pairs, over its seeds."""
    best: float
    worst: float
    mean: float


def accuracy_table(records):
    """{model: {pairs: Accuracy(best, worst, mean) over the seeds}} from recall records, pairs ascending."""
    grouped = {}
    for record in records:
        grouped.setdefault(record["model"], {}).setdefault(record["pairs"], []).append(record["accuracy"])
    return {model: {p: Accuracy(max(a), min(a), sum(a) / len(a)) for p, a in sorted(by_pairs.items())}
            for model, by_pairs in grouped.items()}


def holds_up_to(by_pairs, threshold=0.9, statistic="best"):
    """The largest P where `statistic` of the accuracy reaches `threshold`, as at every smaller P.

    None when not even the smallest P does.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}")
    if statistic not in Accuracy._fields:
        raise ValueError(f"statistic must be one of {Accuracy._fields}, got {statistic!r}")
    held = None
    for p, accuracy in sorted(by_pairs.items()):
        if getattr(accuracy, statistic) < threshold:
            break
        held = p
    return held


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m linattn.learn.experiments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full", help="preset sizes (default: full)")
    parser.add_argument("--task", choices=("copy", "recall", "both"), default="both")
    parser.add_argument("--steps", type=int, help="recall training steps per run (overrides the preset)")
    parser.add_argument("--copy-steps", type=int, help="copy training steps per run")
    parser.add_argument("--pairs", type=int, nargs="+", help="numbers of key-value pairs, e.g. 2 4 8 16 32 64 128")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds; each one is a full repetition")
    parser.add_argument("--models", nargs="+", help="e.g. softmax linear-elu linear-poly2 linear-performer")
    parser.add_argument("--head-dim", type=int, help="size of each query/key head (default 16)")
    parser.add_argument("--threads", type=int, help="torch threads while training (default 1)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR, help=f"where to write (default {DATA_DIR})")
    parser.add_argument("--name", help="file name suffix (default: the size), e.g. copy_<name>.json")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = {"steps": args.steps, "copy_steps": args.copy_steps, "head_dim": args.head_dim,
                 "threads": args.threads, "pairs": tuple(args.pairs) if args.pairs else None,
                 "seeds": tuple(args.seeds) if args.seeds else None,
                 "models": tuple(args.models) if args.models else None}
    settings = dataclasses.replace(SIZES[args.size], **{k: v for k, v in overrides.items() if v is not None})
    for name in settings.models + settings.copy_models:
        model_kwargs(name, settings.head_dim)  # fail before any training on an unknown model
    device = choose_device(args.device)
    suffix = args.name or args.size
    written = []
    if args.task in ("copy", "both"):
        records = copy_sweep(settings, device=device)
        written.append(save_results(args.out_dir / f"copy_{suffix}.json", records, settings=settings.as_dict(),
                                    device=device))
    if args.task in ("recall", "both"):
        records = recall_sweep(settings, device=device)
        written.append(save_results(args.out_dir / f"recall_{suffix}.json", records, settings=settings.as_dict(),
                                    device=device))
    for path in written:
        print(f"wrote {path}")
    return written


if __name__ == "__main__":
    main()
