"""`mlstrat models`: inspect a saved model directory, or upgrade an older Keras model to one.

mlstrat models inspect models/btc-xgb
mlstrat models upgrade old_model.h5 --out models/upgraded --features names.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mlstrat.errors import ConfigError, SchemaError


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _inspect(args: argparse.Namespace) -> int:
    from mlstrat.predictors.persistence import verify_model_dir

    report = verify_model_dir(args.dir)
    meta = report.metadata
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    training = meta.get("training") or {}
    versions = meta.get("versions") or {}
    lines = [
        f"model        {report.path}",
        f"predictor    {meta.get('predictor')}  (task {meta.get('task')}, "
        f"window {meta.get('window')}, format {meta.get('format_version')})",
        f"created      {meta.get('created_at')}  by mlstrat {versions.get('mlstrat')}",
        "versions     " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()) if v),
    ]
    features = meta.get("feature_names") or []
    if features:
        shown = ", ".join(features[:8]) + (", ..." if len(features) > 8 else "")
        lines.append(f"features     {len(features)}: {shown}")
    if training:
        period = f"{training.get('train_start')} .. {training.get('train_end')}"
        lines.append(
            f"trained on   {training.get('n_rows')} rows, {period}, target {training.get('target')}"
        )
        if training.get("data_sha256"):
            lines.append(f"data sha256  {training['data_sha256']}")
    if meta.get("members"):
        lines.append(
            "members      "
            + ", ".join(
                f"{m.get('name')} (w={_fmt(w)})"
                for m, w in zip(meta["members"], meta.get("normalized_weights") or [], strict=False)
            )
        )
    if meta.get("best_iteration") is not None:
        lines.append(f"best iter    {meta['best_iteration']}")
    metrics = meta.get("validation_metrics") or {}
    if metrics:
        lines.append("validation   " + ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items()))
    if "saved_model" in (meta.get("requires_trust") or []):
        lines.append(
            "trust        holds a TensorFlow SavedModel: loading it runs its graph, so it loads "
            "only with trust_saved_model=True"
        )
    lines.append(f"manifest     OK, {len(report.files_checked)} files verified (sha256)")
    if report.extra_files:
        lines.append(
            f"note         files not in the manifest (never read): {', '.join(report.extra_files)}"
        )
    print("\n".join(lines))
    return 0


def _names(path: str | None) -> list[str] | None:
    if path is None:
        return None
    try:
        names = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SchemaError(
            f"cannot read feature names ({exc})", file=path, fix="check the file"
        ) from exc
    if isinstance(names, dict):
        names = names.get("feature_names")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise SchemaError(
            "feature names must be a JSON list of strings (or {'feature_names': [...]})",
            file=path,
            fix="write the names the model was trained with, in training order",
        )
    return names


def _upgrade(args: argparse.Namespace) -> int:
    from mlstrat.predictors.upgrade import (
        DEFAULT_TOLERANCE,
        read_pickled_scaler,
        read_scaler_json,
        upgrade_legacy_model,
    )

    scaler = None
    if args.scaler_json:
        scaler = read_scaler_json(args.scaler_json)
    elif args.scaler_pickle:
        scaler = read_pickled_scaler(args.scaler_pickle, trust_pickle=args.trust_pickle)
    report = upgrade_legacy_model(
        args.old,
        args.out,
        feature_names=_names(args.features),
        scaler=scaler,
        architecture=_architecture(args.architecture, args.architecture_params),
        output=args.output,
        tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
        reference_inputs=args.reference_inputs,
        reference_outputs=args.reference_outputs,
        trust_saved_model=args.trust_saved_model,
    )
    print(
        f"upgraded {report.source} -> {report.out} (strategy {report.strategy}, "
        f"{len(report.patches)} patches, max |diff| {report.max_abs_diff:.2e} on "
        f"{report.n_checked} random inputs)"
    )
    if report.n_reference:
        print(
            f"reference outputs reproduced on {report.n_reference} inputs "
            f"(max |diff| {report.reference_max_abs_diff:.2e})"
        )
    else:
        print(
            "no reference outputs given: corrupted weights cannot be detected (HDF5 has no "
            "checksum); pass --reference-inputs X.npy --reference-outputs Y.npy"
        )
    for patch in report.patches:
        print(f"  - {patch}")
    return 0


def _architecture(name: str | None, params: str | None) -> tuple[str, dict] | None:
    """--architecture NAME [--architecture-params JSON] as (name, params), checked."""
    if name is None:
        if params is not None:
            raise ConfigError(
                "--architecture-params needs --architecture", fix="add --architecture NAME"
            )
        return None
    try:
        parsed = json.loads(params or "{}")
    except ValueError as exc:
        raise ConfigError(
            f"--architecture-params is not JSON ({exc})",
            fix="write e.g. --architecture-params '{\"timesteps\": 96}'",
        ) from exc
    if not isinstance(parsed, dict):
        raise ConfigError("--architecture-params must be a JSON object", fix="use {...}")
    return name, parsed


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `mlstrat models` with its `inspect` and `upgrade` commands."""
    models = sub.add_parser("models", help="inspect saved model directories")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    inspect = models_sub.add_parser(
        "inspect", help="print a model's metadata and verify its manifest"
    )
    inspect.add_argument("dir", help="model directory")
    inspect.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    inspect.set_defaults(func=_inspect)
    _add_upgrade(models_sub)


def _add_upgrade(models_sub: argparse._SubParsersAction) -> None:
    """Register `models upgrade` under the `models` command."""
    p = models_sub.add_parser("upgrade", help="convert an older Keras model to a model directory")
    p.add_argument("old", help="legacy .h5 / .keras file or SavedModel directory")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--features", help="JSON list of the model's feature names, in order")
    p.add_argument(
        "--scaler-json", help="scaler parameters as JSON (mlstrat or scikit-learn names)"
    )
    p.add_argument(
        "--scaler-pickle", help="legacy pickled scikit-learn scaler (needs --trust-pickle)"
    )
    p.add_argument("--trust-pickle", action="store_true", help="allow reading --scaler-pickle")
    p.add_argument(
        "--trust-saved-model",
        action="store_true",
        help="allow loading a TensorFlow SavedModel (runs its graph; only for models you trust)",
    )
    p.add_argument(
        "--architecture",
        help="force a weights-only load into this registered builder, e.g. seed000",
    )
    p.add_argument("--architecture-params", help="JSON object of builder parameters")
    p.add_argument(
        "--output",
        default="auto",
        choices=["auto", "proba_up", "three_class", "return"],
        help="what the model's output means",
    )
    p.add_argument(
        "--reference-inputs", help=".npy of model inputs whose outputs are known (needs the next)"
    )
    p.add_argument(
        "--reference-outputs",
        help=".npy of the outputs the model gave on --reference-inputs where it was trained",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        help="outputs agree when |a - b| <= T * (1 + |b|) (default 1e-5)",
    )
    p.set_defaults(func=_upgrade)
