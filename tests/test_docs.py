"""The documentation is true: every image it shows exists, and the README's Python example runs as written."""

import re
from pathlib import Path

import pytest
import tifffile
import torch

from napari_nrrn.io.samples import SAMPLE_STACK_PATH
from napari_nrrn.model.checkpoint import save_model
from napari_nrrn.model.nrrn import NRRN

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
# ![alt](target), ![alt](<target with spaces> "title") and <img ... src="target" ...>
MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*(?:<([^>]+)>|([^)\s]+))(?:\s+\"[^\"]*\")?\s*\)")
HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def image_targets(text: str) -> list[str]:
    markdown = [bracketed or plain for bracketed, plain in MARKDOWN_IMAGE.findall(text)]
    return markdown + HTML_IMAGE.findall(text)


def test_image_parser_finds_both_forms():
    text = '![a](images/x.png) text ![b](<images/y z.png> "title")\n<img alt="c" src="images/c.png" width=3>'
    assert image_targets(text) == ["images/x.png", "images/y z.png", "images/c.png"]


@pytest.mark.parametrize("page", DOCS, ids=[page.name for page in DOCS])
def test_every_image_a_page_shows_exists(page):
    local = [t for t in image_targets(page.read_text(encoding="utf-8")) if not re.match(r"[a-z]+://", t)]
    missing = [t for t in local if not (page.parent / t.split("#")[0]).is_file()]
    assert not missing, f"{page.relative_to(ROOT)} shows images that do not exist: {missing}"


def test_the_docs_show_images():
    """Not vacuous: the parser finds the screenshots the docs are known to show."""
    shown = {t for page in DOCS for t in image_targets(page.read_text(encoding="utf-8"))}
    assert {"images/walkthrough_preview.png", "images/profiles_window.png"} <= shown


def test_readme_python_example_runs_as_written(tmp_path, monkeypatch, one_torch_thread):
    blocks = PYTHON_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python block"
    sample = tifffile.imread(SAMPLE_STACK_PATH)[:8, :64, :64]
    tifffile.imwrite(tmp_path / "stack.tif", sample)
    torch.manual_seed(0)
    save_model(NRRN(depth=1, width=4), tmp_path / "model.pt")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme_example"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    # The names the example promises, with the shapes and types it says they have.
    assert namespace["stack"].shape == (8, 64, 64)
    denoised = namespace["denoised"].compute()
    assert denoised.shape == (8, 64, 64) and denoised.dtype == sample.dtype
    assert namespace["one"].shape == (64, 64) and namespace["one"].dtype == sample.dtype


# A menu path as the docs write it, in bold or italics: *File > Open Sample > napari-nrrn > ...*.
MENU_PATH = re.compile(r"(\*\*?)((?:File|Layers|Plugins) > [^*]+?)\1")


def doc_menu_paths() -> dict[str, set[str]]:
    """Every napari menu path the README and docs name that leads to this plugin, by page."""
    found = {}
    for page in [ROOT / "README.md", *DOCS]:
        text = " ".join(page.read_text(encoding="utf-8").split())
        paths = {p for _, p in MENU_PATH.findall(text) if p.count(" > ") >= 2 or "napari-nrrn" in p}
        if paths:
            found[page.name] = paths
    return found


def qt_menu_paths(menu_bar) -> set[str]:
    """Every path to an action or submenu of a window's menu bar, as napari shows them."""
    paths = set()

    def walk(menu, prefix):
        menu.aboutToShow.emit()  # napari fills some menus (Open Sample, Plugins) when they open
        for action in menu.actions():
            title = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
            if not title:
                continue
            path = f"{prefix} > {title}" if prefix else title
            paths.add(path)
            if action.menu() is not None:
                walk(action.menu(), path)

    for action in menu_bar.actions():
        walk(action.menu(), action.text().replace("&", ""))
    return paths


def test_the_docs_name_menus_napari_shows(make_napari_viewer):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer(show=True)
    # On PyQt6 (the `qt` and `testing` extras) no deprecation toast covers the canvas, as on PyQt5.
    assert not [n for n in notification_manager.records if "PyQt5" in n.message]
    real = qt_menu_paths(viewer.window._qt_window.menuBar())
    named = doc_menu_paths()
    # Not vacuous: the pages that send a user to the plugin's menus are read.
    assert {"README.md", "walkthrough.md", "profiles.md", "io.md"} <= set(named)
    assert "Plugins > napari-nrrn > Resin line profiles (napari-nrrn)" in real
    wrong = {page: sorted(paths - real) for page, paths in named.items() if paths - real}
    assert not wrong, f"the docs name menus napari does not show: {wrong}"
