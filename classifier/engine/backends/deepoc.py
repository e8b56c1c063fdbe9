"""DEEP-OC image-classification-tf models: a model folder or tarball served as a Keras model."""

from __future__ import annotations

import os
from typing import Any

from ..deepoc_format import DeepOCFormatError, DeepOCModel, read_deepoc_model
from .keras import KerasBackend, load_keras_model


class DeepOCBackend(KerasBackend):
    """A DEEP-OC model: its `ckpts/final_model.h5` through KerasBackend, plus the labels and
    preprocessing spec its folder declares (`deepoc`, `labels`, `spec`)."""

    kind = "deepoc"

    def __init__(self, model: Any, deepoc: DeepOCModel, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.deepoc = deepoc
        if self.num_classes != len(deepoc.labels):
            raise DeepOCFormatError(
                f"the model outputs {self.num_classes} classes but classes.txt lists "
                f"{len(deepoc.labels)}"
            )
        if self.input_size is not None and self.input_size != (deepoc.spec.image_size,) * 2:
            raise DeepOCFormatError(
                f"the model expects {self.input_size[0]}x{self.input_size[1]} images but "
                f"conf.json says image_size {deepoc.spec.image_size}"
            )

    @property
    def labels(self) -> list[str]:
        return self.deepoc.labels

    @property
    def spec(self) -> Any:
        return self.deepoc.spec

    @classmethod
    def load(  # type: ignore[override]
        cls,
        path: str | os.PathLike[str],
        *,
        output: str = "auto",
        ckpt_name: str | None = None,
        custom_objects: dict[str, Any] | None = None,
    ) -> DeepOCBackend:
        """Load a DEEP-OC model folder or .tar.gz/.tar.xz; files extracted from an archive are
        removed once the model is in memory."""
        deepoc = read_deepoc_model(path, ckpt_name=ckpt_name)
        try:
            model, loaded_with = load_keras_model(
                deepoc.weights_path, custom_objects=custom_objects
            )
            return cls(model, deepoc, output=output, loaded_with=loaded_with)
        finally:
            deepoc.cleanup()
