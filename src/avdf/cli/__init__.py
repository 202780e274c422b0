"""The ``avdf`` command. Each subcommand lives in its own module and is imported only when
used, so ``avdf --help`` and start-up stay fast."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Each module defines ``add_arguments(parser)`` and
# ``run(args) -> int`` (the exit status).
COMMANDS: dict[str, tuple[str, str]] = {
    "detect": ("avdf.cli.detect", "find fake segments in videos and say which modality was faked"),
    "preprocess": ("avdf.cli.preprocess", "decode videos and cache face, lip and audio inputs"),
    "synth": ("avdf.cli.synth", "build a synthetic audio-visual deepfake corpus (LAV-DF layout)"),
    "train": ("avdf.cli.train", "train a model from a YAML config"),
    "evaluate": ("avdf.cli.evaluate", "score predictions with the official metrics"),
    "tune": (
        "avdf.cli.tune",
        "fit decoding and calibration on a dev split, stored in the checkpoint",
    ),
    "ensemble": ("avdf.cli.ensemble", "average trained checkpoints into one (then tune it)"),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    from avdf import __version__

    parser = argparse.ArgumentParser(
        prog="avdf",
        description="Audio-visual deepfake detection and temporal localization (MMMS-BA).",
    )
    parser.add_argument("--version", action="version", version=f"avdf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 2
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("avdf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
