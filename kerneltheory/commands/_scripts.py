"""Run an experiment script of the source checkout (``experiments/<name>.py``) as a subcommand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import kerneltheory


def experiment_path(name: str) -> Path:
    path = Path(kerneltheory.__file__).resolve().parents[1] / "experiments" / f"{name}.py"
    if not path.is_file():
        raise ValueError(
            f"experiments/{name}.py ships with the source checkout, not the wheel: install kerneltheory with "
            "'pip install -e .' from a clone to run it"
        )
    return path


def run_experiment(name: str, argv: list[str]) -> int:
    """Load ``experiments/<name>.py`` and call its ``main(argv)``."""
    path = experiment_path(name)
    spec = importlib.util.spec_from_file_location(f"kerneltheory_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(argv) or 0)


def register_script(subparsers, name: str, help_text: str) -> None:
    """List ``name`` in the CLI's help. :func:`kerneltheory.cli.main` hands every argument after it to
    ``experiments/<name>.py``'s own parser (``kerneltheory NAME --help`` shows that parser's help)."""
    from . import SCRIPTS

    parser = subparsers.add_parser(name, help=help_text)
    parser.set_defaults(func=lambda a: run_experiment(SCRIPTS[name], []))
