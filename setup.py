"""Ship configs/ inside the installed ``render`` package (as ``render/configs``).

The repository keeps configs/ at the top level; a non-editable install has no repository, so the
wheel carries a copy that ``render.config.config_dir`` finds. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies configs/ to ``render/configs`` in the build."""

    def run(self) -> None:
        super().run()
        # An editable install reads configs/ from the checkout: nothing to copy.
        if not self.editable_mode:
            self.copy_tree("configs", str(Path(self.build_lib) / "render" / "configs"))


setup(cmdclass={"build_py": BuildPyWithConfigs})
