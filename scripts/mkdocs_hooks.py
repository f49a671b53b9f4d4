"""MkDocs hooks (``hooks:`` in mkdocs.yml): the generated configuration reference, and the
repository files outside ``docs/`` that pages show or link to.

A page links to such a file by its path relative to the page's own place in the repository
(``../../configs/masks/wave.png`` from ``docs/guide/``), so the link also works where the
Markdown is read in the repository; the site serves the file under ``repository/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]
# This checkout's render/ and scripts/, whichever copy of tiledream is installed.
sys.path.insert(0, str(ROOT))

from scripts.config_reference import markdown  # noqa: E402

#: Where the generated reference lives among the pages.
REFERENCE = "reference/configuration.md"
#: Files outside docs/ that the pages show or link to, by their path in the repository.
REPOSITORY_FILES = ("configs/masks/wave.png", "examples/tiledream_api.ipynb")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the configuration reference and the repository files to the site."""
    files.append(File.generated(config, REFERENCE, content=markdown()))
    for path in REPOSITORY_FILES:
        # The name a link from docs/ resolves to: one folder above the docs (which MkDocs
        # would leave out as a hidden name, were it not included explicitly).
        file = File.generated(
            config, f"../{path}", abs_src_path=str(ROOT / path), inclusion=InclusionLevel.INCLUDED
        )
        file.dest_uri = f"repository/{path}"
        files.append(file)
    return files
