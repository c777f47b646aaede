"""Readers of the public datasets AnyRef trains on; each yields
:class:`~anyref_ros.data.sample.Sample` objects lazily (images are read
when an item is requested)."""

from .ade20k import ADE20KDataset
from .avsbench import AVSBenchDataset
from .coco import CocoExemplars, CocoIndex, CocoSegmentation
from .grefcoco import GRefCocoDataset
from .reasonseg import ReasonSegDataset
from .refer import ReferDataset

#: Reader of each data-source kind (``anyref-train`` sources, ``anyref-eval --source``).
READERS = {"refer": ReferDataset, "grefcoco": GRefCocoDataset, "reasonseg": ReasonSegDataset,
           "coco": CocoSegmentation, "coco_exemplar": CocoExemplars, "ade20k": ADE20KDataset,
           "avsbench": AVSBenchDataset}

__all__ = ["ADE20KDataset", "AVSBenchDataset", "CocoExemplars", "CocoIndex", "CocoSegmentation", "GRefCocoDataset",
           "READERS", "ReasonSegDataset", "ReferDataset"]
