"""Parity with Keras itself: the same weights and inputs through Keras 3 and kcli.

Keras (torch backend) is in the dev extra; without it the parity modules skip (each imports it
with pytest.importorskip: a skip raised here, in a conftest, would stop the whole session). The
backend is chosen before Keras is first imported, so KERAS_BACKEND is set here for the session.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
