"""Hypothesis profiles for the property suites in this folder.

* ``ci`` (the default): derandomized (a fixed seed, the same examples on every
  run), no example database, a bounded number of examples per property so the
  whole folder stays under 3 minutes on a 2-core CPU.
* ``long``: random seeds, ten times the examples, the example database under
  ``.hypothesis/`` (git-ignored) so failures found once are replayed first:

      ANYREF_HYPOTHESIS_PROFILE=long bash scripts/test.sh tests/property

Every property here asks: on any input (valid or garbage), the code under test
either gives a correct answer or a clear error (ConversionError, a failed
response with a message), never another exception, and never does work or
allocates memory that grows with a number the sender merely claims.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "ANYREF_HYPOTHESIS_PROFILE"
_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                      HealthCheck.function_scoped_fixture])

settings.register_profile("ci", max_examples=100, derandomize=True, database=None, print_blob=True, **_COMMON)
settings.register_profile("long", max_examples=1000, derandomize=False, print_blob=True, **_COMMON)
settings.load_profile(os.environ.get(PROFILE_VARIABLE, "ci"))
