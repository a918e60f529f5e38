"""MkDocs hooks (mkdocs.yml ``hooks:``): the changelog page is CHANGELOG.md itself.

docs/changelog.md only says where the changelog is; when the site is built its text is replaced by
the top-level CHANGELOG.md, so there is one changelog to keep and the site cannot show a stale one.
"""

from pathlib import Path

CHANGELOG = Path(__file__).resolve().parent.parent / "CHANGELOG.md"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "changelog.md":
        return CHANGELOG.read_text()
    return markdown
