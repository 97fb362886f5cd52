"""Installs keras_l2o: the library, and its meta-training and command lines under keras_l2o_meta.

The repository's top-level `trainers/` and `scripts/` install as
`keras_l2o_meta.trainers` and `keras_l2o_meta.scripts` (`keras_l2o_meta` is a
namespace package with no folder of its own), so site-packages gets only this
project's names: `keras_l2o` and `keras_l2o_meta`. README.md, "Installed names".
"""

import setuptools

# Installed name -> repository folder. The library keeps its name.
RENAMED = {"keras_l2o_meta.trainers": "trainers", "keras_l2o_meta.scripts": "scripts"}


def packages() -> list:
  """The library's packages and the renamed ones with their sub-packages, by installed name."""
  names = setuptools.find_packages(include=["keras_l2o", "keras_l2o.*"])
  for name, folder in RENAMED.items():
    names += [name] + [f"{name}.{sub}" for sub in setuptools.find_packages(where=folder)]
  return names


setuptools.setup(
    name="keras_l2o",
    version="0.1.0",
    description="Learned optimizers for TensorFlow / Keras 3: meta-trained update rules as Keras optimizers.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages(),
    package_dir=RENAMED,
    package_data={"keras_l2o": ["pretrained/*.json", "pretrained/*.npz", "native/*.cc", "native/*.h"]},
    install_requires=[
        "tensorflow>=2.16,<3",
        "keras>=3.3,<4",
        "tensorflow-probability>=0.24",
        "tf-keras>=2.16",
        "absl-py>=1.0",
        "tensorboard>=2.16",
        "numpy>=1.23",
        "scikit-learn>=1.2",
        "mlxtend>=0.22",
        "matplotlib>=3.6",
    ],
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6"]},
    entry_points={
        "console_scripts": [
            "keras-l2o-benchmark=keras_l2o_meta.scripts.benchmark:run",
            "keras-l2o-export=keras_l2o_meta.scripts.export_saved_model:run",
            "keras-l2o-meta-train=keras_l2o_meta.scripts.meta_train:run",
            "keras-l2o-evaluate=keras_l2o_meta.scripts.evaluate:run",
        ],
    },
)
