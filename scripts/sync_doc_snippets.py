"""Copy the marked regions of the example DAGs into the docs, so the docs never drift from code.

A DAG file marks a region the Airflow way::

    # [START howto_operator_importexport_create_job]
    create = ImportExportCreateJobOperator(...)
    # [END howto_operator_importexport_create_job]

and a Markdown page holds a copy right after a comment naming the file and the region::

    <!-- snippet: dags_examples/example_importexport_migration.py howto_operator_importexport_create_job -->
    ```python
    create = ImportExportCreateJobOperator(...)
    ```

``python scripts/sync_doc_snippets.py`` rewrites every copy under ``docs/``; ``--check`` only
lists the stale ones and exits 1 (``tests/test_docs.py`` fails on them too).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_MARKER = re.compile(r"^\s*# \[(START|END) ([A-Za-z0-9_]+)\]\s*$")
SNIPPET = re.compile(
    r"<!-- snippet: (?P<source>\S+) (?P<region>[A-Za-z0-9_]+) -->\n```python\n(?P<body>.*?)^```$",
    re.DOTALL | re.MULTILINE,
)


class SnippetError(ValueError):
    """A region marker or a snippet reference that cannot be resolved."""


@dataclass(frozen=True)
class Snippet:
    """One copy in a page: the file and region it names, its text, and where the text sits."""

    source: str
    region: str
    body: str
    start: int
    end: int


def marked_regions(path: Path) -> dict[str, str]:
    """Each ``# [START name]`` ... ``# [END name]`` region of a file, dedented, without the markers."""
    regions: dict[str, str] = {}
    open_regions: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        marker = _MARKER.match(line)
        if marker is None:
            for lines in open_regions.values():
                lines.append(line)
            continue
        kind, name = marker.groups()
        if kind == "START":
            if name in open_regions or name in regions:
                raise SnippetError(f"{path}:{number}: region {name!r} starts twice")
            open_regions[name] = []
        else:
            if name not in open_regions:
                raise SnippetError(f"{path}:{number}: region {name!r} ends without a start")
            regions[name] = textwrap.dedent("\n".join(open_regions.pop(name))).strip("\n") + "\n"
    if open_regions:
        raise SnippetError(f"{path}: region(s) {sorted(open_regions)} never end")
    return regions


def snippets(text: str) -> list[Snippet]:
    return [
        Snippet(m["source"], m["region"], m["body"], m.start("body"), m.end("body")) for m in SNIPPET.finditer(text)
    ]


def region_text(root: Path, source: str, region: str) -> str:
    path = root / source
    if not path.is_file():
        raise SnippetError(f"snippet source {source} does not exist")
    regions = marked_regions(path)
    if region not in regions:
        raise SnippetError(f"{source} has no region {region!r}; it has {sorted(regions)}")
    return regions[region]


def synced(text: str, root: Path = ROOT) -> str:
    """The page with every snippet replaced by its region's current text."""
    parts, position = [], 0
    for snippet in snippets(text):
        parts += [text[position : snippet.start], region_text(root, snippet.source, snippet.region)]
        position = snippet.end
    return "".join(parts) + text[position:]


def pages(docs: Path = DOCS) -> list[Path]:
    return sorted(docs.rglob("*.md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Copy the example DAGs' marked regions into docs/.")
    parser.add_argument("--check", action="store_true", help="only list stale pages; exit 1 if any")
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text()
        try:
            new = synced(text)
        except SnippetError as err:
            print(f"{page.relative_to(ROOT)}: {err}", file=sys.stderr)
            return 1
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    for page in stale:
        print(f"{'stale' if args.check else 'updated'}: {page}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
