"""``python -m anyref_ros.training`` (also under ``accelerate launch``): see ``cli``."""

from .cli import main

raise SystemExit(main())
