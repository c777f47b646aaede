"""Readers of the public datasets AnyRef trains on; each yields
:class:`~anyref_ros.data.sample.Sample` objects lazily (images are read
when an item is requested)."""

from .ade20k import ADE20KDataset
from .avsbench import AVSBenchDataset
from .coco import CocoExemplars, CocoIndex, CocoSegmentation
from .refer import ReferDataset

__all__ = ["ADE20KDataset", "AVSBenchDataset", "CocoExemplars", "CocoIndex", "CocoSegmentation", "ReferDataset"]
