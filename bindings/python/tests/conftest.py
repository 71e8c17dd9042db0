import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from hypothesis import settings

# No example database in the tree: every run draws afresh (a failure prints its example).
settings.register_profile("kb", database=None)
settings.load_profile("kb")
