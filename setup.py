"""Build hooks that ``setup.cfg`` cannot express (all metadata stays in ``setup.cfg``).

1. ``task_configs/`` (top level in the checkout, where task authors expect it) ships inside the
   wheel as the package ``lm_eval_infogain.task_configs``, sub-folders included.
2. ``lm_eval_infogain.pth`` goes to the *root* of site-packages — the only place Python reads
   ``.pth`` files from — for a normal wheel and for an editable install alike. It imports the tiny
   ``lm_eval_infogain_bootstrap`` module, which registers the plugin only inside lm-eval's CLI.
"""

from pathlib import Path

from setuptools import find_namespace_packages, find_packages, setup
from setuptools.command.build_py import build_py

PTH = "lm_eval_infogain.pth"
HERE = Path(__file__).resolve().parent


class BuildPyWithPth(build_py):
    """``build_py`` that also places the ``.pth`` file at the wheel root."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            # Editable wheels are assembled from the install command's folder, not build_lib.
            target = Path(self.get_finalized_command("install").install_lib)
        else:
            target = Path(self.build_lib)
        target.mkdir(parents=True, exist_ok=True)
        self.copy_file(str(HERE / PTH), str(target / PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode=1):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(str(Path(self.build_lib) / PTH))
        return outputs


TASK_PACKAGE = "lm_eval_infogain.task_configs"
packages = find_packages(include=["lm_eval_infogain", "lm_eval_infogain.*"])
packages += [TASK_PACKAGE] + [f"{TASK_PACKAGE}.{name}" for name in find_namespace_packages(where="task_configs")]

setup(
    packages=packages,
    package_dir={TASK_PACKAGE: "task_configs"},
    cmdclass={"build_py": BuildPyWithPth},
)
