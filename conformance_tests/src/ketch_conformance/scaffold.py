"""``ketch new-plugin NAME``: a plugin skeleton that installs, runs and passes the suite.

The files come from the ``plugin_template`` folder beside this module: each
``*.tmpl`` file is written without its suffix, with ``$name`` (the plugin's
name), ``$package`` (``ketch_NAME``) and ``$distribution`` (``ketch-NAME``)
filled in, and a folder named ``__package__`` renamed to the package.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from string import Template
from typing import Any, Final

__all__ = ["TEMPLATE", "add_new_plugin_command", "new_plugin"]

TEMPLATE: Final = Path(__file__).with_name("plugin_template")
NAME_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]*")


def _fields(name: str) -> dict[str, str]:
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"plugin name {name!r}: use lower-case letters, digits and underscores, starting "
            "with a letter (it becomes the package ketch_NAME)"
        )
    return {"name": name, "package": f"ketch_{name}", "distribution": f"ketch-{name}"}


def new_plugin(name: str, folder: Path) -> list[Path]:
    """Write the skeleton of plugin ``name`` into ``folder`` (which must not exist); the files."""
    fields = _fields(name)
    if folder.exists():
        raise FileExistsError(f"{folder} already exists; choose another folder")
    written = []
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")
        parts = [fields["package"] if part == "__package__" else part for part in relative.parts]
        destination = folder.joinpath(*parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        text = Template(source.read_text(encoding="utf-8")).substitute(fields)
        destination.write_text(text, encoding="utf-8")
        written.append(destination)
    return written


def _run(args: argparse.Namespace) -> int:
    folder = Path(args.folder or f"ketch-{args.name}")
    try:
        written = new_plugin(args.name, folder)
    except (ValueError, FileExistsError) as error:
        print(f"ketch new-plugin: {error}")
        return 2
    for path in written:
        print(f"wrote {path}")
    print(
        f"\nnext: cd {folder} && pip install -e '.[test]' && pytest\n"
        "then replace each TODO with your framework; docs/writing_plugins.md walks through it"
    )
    return 0


def add_new_plugin_command(commands: Any) -> None:
    """Add ``ketch new-plugin`` to the ``ketch`` command's sub-parsers."""
    parser = commands.add_parser(
        "new-plugin",
        help="start a framework plugin from a skeleton that passes the conformance suite",
        description=(
            "Write a plugin skeleton for NAME: a pyproject with the entry points, the hooks "
            "with TODOs, a README and tests wired to the conformance suite."
        ),
    )
    parser.add_argument("name", help="the plugin's name: lower-case letters, digits, underscores")
    parser.add_argument("--folder", help="where to write it (default: ./ketch-NAME)")
    parser.set_defaults(handler=_run)
