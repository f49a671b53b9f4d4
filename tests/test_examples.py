"""examples/: every notebook runs top to bottom and shows what it says it shows."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_notebooks_are_committed_without_outputs():
    for path in EXAMPLES.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path


@pytest.mark.slow
def test_api_notebook_runs_and_shows_its_pictures(tmp_path):
    notebook = nbformat.read(EXAMPLES / "tiledream_api.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == 2, "the embedded model's render and the user's model's render"
    text = "".join(out.get("text", "") for out in outputs)
    assert "UserError: " in text and "'conv'" in text
    assert "render.png" in text and "progress.gif" in text
    assert list(tmp_path.iterdir()) == [], "render_image writes nothing without out_dir"
