"""Build hook: ship the device profiles, the shipped latency tables and the on-device runner in the wheel.

They live at the top of the repository (``device_profiles/``, ``latency_tables/``, ``tools/``), where
developers and mobile users (who copy ``tools/edgenas_device_runner.py`` to a phone) expect them.
The build copies them into the package as ``edgenas/_data/...`` (no second copy in git), where
``edgenas.paths.shipped`` finds them in an installed edgenas. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"device_profiles": ["*.yaml"], "latency_tables": ["*/*.csv", "*/*.json", "*/*.md"],
           "tools": ["edgenas_device_runner.py", "android_benchmark.sh"]}


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout
            return
        for folder, patterns in SHIPPED.items():
            for pattern in patterns:
                for src in sorted((HERE / folder).glob(pattern)):
                    dest = Path(self.build_lib) / "edgenas" / "_data" / src.relative_to(HERE)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)


setup(cmdclass={"build_py": BuildPyWithData})
