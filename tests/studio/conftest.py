"""The studio's tests reuse the server tests' harness (real `vidora serve` processes, the
deterministic fake engine), so both suites start servers the same way."""

from __future__ import annotations

import sys
from pathlib import Path

SERVER_TESTS = Path(__file__).resolve().parent.parent / "server"
if str(SERVER_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVER_TESTS))  # harness.py and fake_engine.py, by plain name
