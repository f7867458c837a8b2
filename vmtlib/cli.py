"""The ``train`` command's options, generated from :class:`vmtlib.train_config.TrainConfig`.

Every field of TrainConfig is one option with the field's help text, its default (read
from the dataclass, so it is stated once) and its choices; ``--param NAME=VALUE`` fills
``method_kwargs``. A value comes from, in increasing priority: TrainConfig's defaults,
``--config FILE`` (a saved ``config.json``), the flags given. With ``--resume`` the base
is the run's own ``config.json``, and a flag that contradicts it is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from vmtlib.backbone import pretrained_arg
from vmtlib.checks import ConfigError
from vmtlib.train_config import RESUMABLE_FIELDS, TrainConfig

NOT_FLAGS = ("method_kwargs",)  # filled by --param, below


def flag_of(field: str) -> str:
    """``batch_size`` -> ``--batch-size`` (``method_kwargs`` -> ``--param``)."""
    for f in dataclasses.fields(TrainConfig):
        if f.name == field and f.metadata.get("flag"):
            return "--" + f.metadata["flag"]
    return "--" + field.replace("_", "-")


def parse_value(text: str) -> Any:
    """``"4"`` -> 4, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["rho=4", "m=3"]`` -> ``{"rho": 4, "m": 3}``; one-line errors for other forms."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--param expects NAME=VALUE, got {pair!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def _read_json(flag: str, path: str) -> Any:
    """The JSON value in ``path``; a ``ValueError`` naming ``flag`` when it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{flag} {path}: not valid JSON ({err})") from err


def read_reference(path: str) -> dict[str, float]:
    """A ``--reference`` file: ``{task: score}`` or a run's final.json (its headline metrics)."""
    from vmtlib.tasks import TASKS

    reference = _read_json("--reference", path)
    if isinstance(reference, dict) and "metrics" in reference:  # a final.json
        reference = {t: m[TASKS[t.partition('#')[0]].metric]
                     for t, m in reference["metrics"].items()}
    return reference


def _parser_type(f: dataclasses.Field) -> Any:
    if f.metadata.get("parse"):
        return f.metadata["parse"]
    if f.name == "pretrained":
        return pretrained_arg
    if f.name in ("reference", "tasks"):
        return str
    return type(f.default) if f.default is not dataclasses.MISSING else str


def _default_text(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        return "none"
    value = f.default
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field; defaults are argparse.SUPPRESS, so that only the
    flags given appear in the namespace (the defaults are merged in :func:`train_config`)."""
    length = parser.add_mutually_exclusive_group()
    for f in dataclasses.fields(TrainConfig):
        if f.name in NOT_FLAGS:
            continue
        meta = f.metadata
        help_text = meta["help"]
        if meta.get("choices"):
            help_text += f"; one of: {', '.join(meta['choices'])}"
        if "default" not in help_text:
            help_text += f" (default: {_default_text(f)})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                  "help": help_text}
        if f.type == "bool":  # --compile / --no-compile (pretrained is bool | str)
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _parser_type(f)
            number = kwargs["type"] in (int, float)
            kwargs["metavar"] = meta.get("metavar") or ("N" if number else f.name.upper())
            if meta.get("choices") and f.name != "tasks":
                kwargs["choices"] = list(meta["choices"])
        target = length if f.name in ("steps", "epochs") else parser
        target.add_argument(flag_of(f.name), **kwargs)
    params = TrainConfig.__dataclass_fields__["method_kwargs"].metadata
    parser.add_argument("--param", action="append", default=[], metavar=params["metavar"],
                        help=params["help"])
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="start from a saved config.json; the flags given override it")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint, with the run's "
                             "own config.json (flags may change only "
                             + ", ".join(flag_of(n) for n in RESUMABLE_FIELDS) + ")")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run already in --out (its run files are deleted)")


def given_values(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields set by flags, in TrainConfig's JSON form."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if "reference" in given:
        given["reference"] = read_reference(given["reference"])
    if "tasks" in given:
        from vmtlib.tasks import parse_tasks

        given["tasks"] = list(parse_tasks(given["tasks"]))
    if args.param:
        given["method_kwargs"] = parse_params(args.param)
    return given


def read_config_file(path: str) -> dict[str, Any]:
    """A ``--config`` file: a JSON object of TrainConfig fields (a run's config.json)."""
    data = _read_json("--config", path)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - names) if isinstance(data, dict) else None
    if unknown is None or unknown:
        raise ValueError(f"--config {path}: expected a JSON object of TrainConfig fields"
                         + (f"; unknown field(s) {unknown}" if unknown else ""))
    return data


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig: defaults < --config < flags; on --resume the run's config.json
    is the base, and a given value that contradicts it is refused naming the flag."""
    wanted = read_config_file(args.config) if args.config else {}
    wanted.update(given_values(args))
    if not args.resume:
        return config_or_error(wanted)
    out = Path(wanted.get("out", TrainConfig.__dataclass_fields__["out"].default))
    saved_path = out / "config.json"
    if not saved_path.is_file():
        return config_or_error(wanted)  # the Trainer refuses: nothing to resume
    saved = json.loads(saved_path.read_text())
    conflicts = []
    for name, value in wanted.items():
        if name in RESUMABLE_FIELDS or name not in saved:
            continue
        if json.loads(json.dumps(value)) != saved[name]:
            conflicts.append(f"{flag_of(name)} {_show(value)} (the run has {_show(saved[name])})")
    if conflicts:
        raise ValueError(f"cannot resume {out}: " + "; ".join(conflicts) + ". A resumed run "
                         "keeps its settings; drop these flags or start a new --out")
    return config_or_error({**saved, **wanted, "out": str(out)})


def config_or_error(values: dict[str, Any]) -> TrainConfig:
    """``TrainConfig(**values)`` with a field's error worded with its flag."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        return TrainConfig(**{k: v for k, v in values.items() if k in names})
    except ConfigError as err:
        raise ValueError(f"{flag_of(err.field.partition('[')[0])} {err.detail}") from None


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, dict) else str(value)
