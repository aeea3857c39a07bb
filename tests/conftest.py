"""Shared fixtures. Tests build what they need in milliseconds: tiny random models, a few
rendered clips. Anything slower is marked `slow` and left out of the default run."""

from __future__ import annotations

import os

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
