"""`ginv sweep`."""

from __future__ import annotations
