"""TEST ONLY: the anyref node's console entry point with a fault plan installed.

    python tests/helpers/faulty_anyref_node.py PLAN --ros-args ...

PLAN is a ``tests/faults.py`` plan ("slow:5", "exception:1,exception:2", ...);
it is installed into every engine of this process, then the node's own
``main`` runs with the remaining arguments. The production entry point
(``anyref_node``) has no such switch.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults import FaultPlan, install  # noqa: E402

install(FaultPlan.parse(sys.argv[1]))
print(f"TEST fault plan installed: {sys.argv[1]}", flush=True)

from anyref_ros.nodes.anyref.node import main  # noqa: E402

main([sys.argv[0], *sys.argv[2:]])
