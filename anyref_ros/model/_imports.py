"""Imports of optional or awkward dependencies, in one place."""

from __future__ import annotations

import sys


def imagebind_model():
    """``imagebind.models.imagebind_model`` (imagebind-unofficial).

    pytorchvideo 0.1.5, which ``imagebind`` imports, still imports
    ``torchvision.transforms.functional_tensor``; current torchvision has
    merged it into ``torchvision.transforms.functional``, so that name is
    aliased first.
    """
    import torchvision.transforms.functional as functional

    sys.modules.setdefault("torchvision.transforms.functional_tensor", functional)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pkg_resources / jit deprecation notices
        from imagebind.models import imagebind_model as module
    return module
