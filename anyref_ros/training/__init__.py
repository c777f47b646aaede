"""Training for anyref_ros: config (``TrainConfig``), mixed-task data
streams, the teacher-forced loss (``AnyRefTrainingModule``), the loop with
checkpoints and resume (``train``) and the ``anyref-train`` CLI.

Importing this package registers the ``toy`` preset.  No ROS imports.
"""

from . import toy_preset  # noqa: F401
from .config import DataSource, TrainConfig, default_config

__all__ = ["DataSource", "TrainConfig", "default_config"]
