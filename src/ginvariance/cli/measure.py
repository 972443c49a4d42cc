"""`ginv measure`."""

from __future__ import annotations
