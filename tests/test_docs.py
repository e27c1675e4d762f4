"""The documentation site: it builds with no warnings, and its references are complete.

scripts/test.sh builds the site once (``scripts/docs.sh``, ``mkdocs build
--strict``) and passes it here as ``LOOPLINE_DOCS_SITE``; run alone, these
tests build it themselves. A public name (in ``loopline.__all__`` or any
package's ``__all__``) that the API reference does not document, or a command
the CLI reference lacks, fails here: adding one means adding its docs.
"""

from __future__ import annotations

import html
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from loopline.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "loopline"
ANCHOR = re.compile(r'\bid="([^"]+)"')


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = os.environ.get("LOOPLINE_DOCS_SITE")
    if built:
        return Path(built)
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "LOOPLINE_DOCS_INSTALL": "0", "LOOPLINE_VENV": sys.prefix}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "docs.sh"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"scripts/docs.sh failed:\n{done.stdout}\n{done.stderr}"
    return out


def packages() -> Iterator[str]:
    """Every package of loopline, by dotted name."""
    for init in sorted(PACKAGE.rglob("__init__.py")):
        parts = init.parent.relative_to(PACKAGE.parent).parts
        yield ".".join(parts)


def public_names() -> list[str]:
    """``package.name`` for every name in the ``__all__`` of loopline and its packages."""
    names = []
    for package in packages():
        module = importlib.import_module(package)
        names += [f"{package}.{name}" for name in getattr(module, "__all__", ())]
    return names


def anchors(page: Path) -> set[str]:
    return {html.unescape(a) for a in ANCHOR.findall(page.read_text(encoding="utf-8"))}


def test_the_api_reference_documents_every_public_name(site: Path) -> None:
    documented = set().union(*(anchors(p) for p in (site / "reference").rglob("*.html")))
    public = public_names()
    assert "loopline.App" in public and "loopline.log.open_log" in public
    missing = [name for name in public if name not in documented]
    assert not missing, (
        f"public names missing from the API reference: {missing}; document each package "
        "with `::: loopline.<package>` on a page of docs/reference/ (and give the name a "
        "docstring)"
    )


def test_the_cli_reference_documents_every_command(site: Path) -> None:
    def paths(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):  # imported when asked for (LazyGroup)
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from paths(sub, (*path, name))

    page = site / "cli.html"
    documented = anchors(page)
    commands = [" ".join(path) for path in paths(cli, ("loopline",))]
    assert "loopline topics create" in commands
    missing = [c for c in commands if c.replace(" ", "-") not in documented]
    assert not missing, f"commands missing from the CLI reference: {missing}"
    # The examples of each command's --help are on the page too.
    assert "loopline topics create clicks --partitions 3" in page.read_text(encoding="utf-8")


def test_docstring_examples_render_as_code(site: Path) -> None:
    page = (site / "reference" / "log.html").read_text(encoding="utf-8")
    # A doctest is a highlighted console block (its >>> a prompt), never a block quote.
    assert 'class="gp">&gt;&gt;&gt; </span>' in page
    assert "<blockquote" not in page


def test_every_decision_is_listed(site: Path) -> None:
    page = (site / "decisions" / "index.html").read_text(encoding="utf-8")
    for decision in sorted((ROOT / "docs" / "decisions").glob("[0-9]*.md")):
        assert f'href="{decision.stem}.html"' in page, f"{decision.name} is not listed"


def test_the_readme_links_only_to_files_in_the_repository() -> None:
    # The site's own links are checked by the strict build; the README is read on its own.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", readme)
    assert targets, "the README links to the docs"
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files not in the repository: {missing}"
