"""Helpers shared by the test modules (no test module imports another)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"
ORIGIN = "http://localhost:3000"  # the page's origin in the default test rule
