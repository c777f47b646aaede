"""Scoring an ``AnyRefPipeline`` on ``Sample`` objects: segmentation and
text metrics (``metrics``, ``text_metrics``) and the per-task runner
(``runner.evaluate``).  The floor under ``training`` (validation during a
run) and ``evaluation`` (the ``anyref-eval`` tool, its report and picture
grid); it imports neither.  No ROS imports."""
