"""``riskmodel train``: train the image risk model, write a bundle (riskmodel.training.recipe)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from riskmodel.cli.options import UsageError, add_cache_dir, add_device, add_quiet, add_seed, image_size
from riskmodel.imaging.dicom import VOI_MODES
from riskmodel.nn.config import PRESETS, ModelConfig, preset_config
from riskmodel.tables import read_table


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "train",
        help="train the image risk model on labelled exams and write a model bundle",
        description=(
            "Train riskmodel.nn.ImageRiskModel on the exams of EXAMS (from 'riskmodel scan --exams') labelled by "
            "COHORT (time, event and optionally density, age). Women are split into train/validation/calibration "
            "sets; the last epoch's weights (or the best epoch by validation C-index, --select best) are kept, "
            "per-year calibrators are fitted on the calibration set, and OUT/bundle is written (safetensors + JSON + "
            "SHA-256 manifest). "
            "Runs on the GPU when there is one; launch with 'torchrun --nproc-per-node=N -m riskmodel.cli "
            "train ...' for several GPUs."
        ),
    )
    p.add_argument("--cohort", required=True, help="labels: one row per exam with time, event (0/1/2), density, age")
    p.add_argument("--exams", required=True, help="exams table (riskmodel scan --exams)")
    p.add_argument("--out", required=True, help="output folder (training/ logs and checkpoints, bundle/)")
    p.add_argument("--key", default="exam_id",
                   help="exams column matching the cohort (default exam_id: the accession number, else the study "
                        "UID, as 'riskmodel scan --exams' writes it)")
    p.add_argument("--label-key", default="exam_id", help="cohort column matching --key (default exam_id)")
    p.add_argument("--image-size", default="512x416", help="ROWSxCOLUMNS (default 512x416)")
    p.add_argument("--voi", default="auto", choices=VOI_MODES,
                   help="apply each file's VOI LUT or window as written (auto), or linearly over the same range "
                        "(linear: vendors' contrast curves dropped); stored in the bundle (default auto)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="network size (riskmodel.nn.PRESETS): resnet18 (default; the ResNet-18 encoder, widths "
                        "64-512, two blocks per stage), small (widths 16-128, one block per stage: the network of "
                        "the recorded synthetic benchmarks, README), tiny (smoke tests)")
    p.add_argument("--tiny", action="store_true", help="the tiny network (smoke tests, CPU); same as --preset tiny")
    p.add_argument("--model-config", help="JSON object of ModelConfig overrides applied on top of the preset, "
                                          "e.g. '{\"agg_layers\": 2}' or '{\"pool\": \"tissue\"}'")
    p.add_argument("--epochs", type=int, default=16,
                   help="training epochs (default 16; the cosine schedule spans them)")
    p.add_argument("--stage2-epochs", type=int, default=0,
                   help="then freeze the encoder, cache view embeddings and train the aggregator and heads "
                        "for this many epochs (Mirai's two-stage recipe; default 0 = off)")
    p.add_argument("--batch-size", type=int, default=8, help="exams per step per process (default 8)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--patience", type=int, default=0,
                   help="early stopping patience in epochs (default 0 = off: with --select last every epoch runs)")
    p.add_argument("--balance", action="store_true", help="class-balance positive years")
    p.add_argument("--aux-weight", type=float, default=0.2,
                   help="weight of the auxiliary density and age losses, on exams whose cohort row has density / "
                        "age (default 0.2; 0 = off)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="random top-bottom flips, ±20° rotations and ±10%% gain per view (Mirai-style; default on)")
    p.add_argument("--schedule", default="cosine", choices=("constant", "cosine"),
                   help="learning-rate schedule (default cosine)")
    p.add_argument("--select", default="last", choices=("best", "last"),
                   help="weights the bundle keeps: the last epoch (last, default: no choice by a small validation "
                        "set's noisy C-index) or the epoch with the best validation C-index (best)")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--calib-fraction", type=float, default=0.15)
    p.add_argument("--calibration", default="isotonic", choices=("isotonic", "platt", "none"))
    add_cache_dir(p, "cache of preprocessed views (speeds up later epochs)")
    add_device(p, "auto, cpu, cuda, cuda:1 …")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    add_seed(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/training/checkpoint")
    add_quiet(p)
    p.set_defaults(func=run)
    return p


def model_config(args: argparse.Namespace, size: tuple[int, int]) -> tuple[ModelConfig, dict]:
    """``train``'s ModelConfig: the ``--preset`` (or ``--tiny``) network at ``size``, then ``--model-config``.

    Returns the config and what the bundle records of its origin: ``{"preset": NAME, "overrides": {...}}``.
    """
    if args.tiny and args.preset not in (None, "tiny"):
        raise UsageError(f"--tiny is the same as --preset tiny: give --preset {args.preset} or --tiny, not both")
    preset = "tiny" if args.tiny else (args.preset or "resnet18")
    try:
        overrides = json.loads(args.model_config) if args.model_config else {}
        if not isinstance(overrides, dict):
            raise ValueError("must be a JSON object")
        config = preset_config(preset, **{"image_size": size, **overrides})
    except ValueError as exc:
        raise UsageError(f"--model-config: {exc}") from None
    return config, {"preset": preset, "overrides": overrides}


def aux_weight(value: float) -> float:
    """``--aux-weight``, checked: a finite number >= 0.

    Raises:
        UsageError: otherwise (the message names the option).
    """
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(f"--aux-weight {value}: must be a finite number >= 0")
    return float(value)


def run(args: argparse.Namespace) -> int:
    """Read the tables, check the options, run the recipe, say where the bundle went."""
    from riskmodel.imaging import resolve_view_paths, upgrade_exams
    from riskmodel.training.recipe import check_training_tables, train_image_model

    weight = aux_weight(args.aux_weight)
    cohort = read_table(args.cohort, text=(args.label_key,))
    exams = upgrade_exams(resolve_view_paths(read_table(args.exams, text=(args.key,)), args.exams), args.exams)
    check_training_tables(cohort, exams, args.key, args.label_key)
    size = image_size(args.image_size)
    _, model = model_config(args, size)
    run = train_image_model(
        cohort, exams, args.out, preset=model["preset"], overrides=model["overrides"], image_size=size,
        key=args.key, label_key=args.label_key, voi=args.voi, epochs=args.epochs, stage2_epochs=args.stage2_epochs,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience, balance=args.balance,
        aux_weight=weight, augment=args.augment, schedule=args.schedule, select=args.select,
        val_fraction=args.val_fraction, calib_fraction=args.calib_fraction,
        calibration=args.calibration, cache_dir=args.cache_dir, device=args.device, workers=args.workers,
        seed=args.seed, resume=args.resume, progress=not args.quiet,
        sources={"cohort": str(args.cohort), "exams": str(args.exams)})
    if run.bundle is None:  # a torchrun process of rank > 0: rank 0 calibrates, saves and reports
        return 0
    if run.calibration_failed:
        print(f"riskmodel: warning: calibration {run.calibration}; the bundle's risks are uncalibrated",
              file=sys.stderr)
    if not args.quiet:
        print(f"riskmodel: trained {run.result.best_epoch} epoch(s) best; bundle -> {run.bundle}", file=sys.stderr)
    return 0
