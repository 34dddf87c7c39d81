"""Parity with Keras itself: the same weights and inputs through Keras 3 and kcli.

Keras (torch backend) is in the dev extra; without it these modules skip. The backend is chosen
before Keras is first imported, so KERAS_BACKEND is set here for the whole test session.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

if keras.backend.backend() != "torch":  # pragma: no cover - someone exported another backend
    pytest.skip("the parity tests need Keras' torch backend", allow_module_level=True)
