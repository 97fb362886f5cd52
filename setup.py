"""Installs keras_l2o (the library), trainers (meta-training) and the absl scripts."""

import setuptools

setuptools.setup(
    name="keras_l2o",
    version="0.1.0",
    description="Learned optimizers for TensorFlow / Keras 3: meta-trained update rules as Keras optimizers.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["keras_l2o", "keras_l2o.*", "trainers", "trainers.*", "scripts", "scripts.*"]),
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
            "keras-l2o-benchmark=scripts.benchmark:run",
            "keras-l2o-export=scripts.export_saved_model:run",
            "keras-l2o-meta-train=scripts.meta_train:run",
            "keras-l2o-evaluate=scripts.evaluate:run",
        ],
    },
)
