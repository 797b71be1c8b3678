"""The errors of the operator's chain tools: audit, replay, export and import.

An AuditMismatch is a finding about the data (a record that differs from what the
replay derives); AuditDamage is a file that cannot be read as LevelDB wrote it. Both
say where; neither is raised for our own bugs.
"""

from __future__ import annotations

from node.errors import NodeError


class AuditMismatch(NodeError):
    """Raised when a replayed block, certificate, result or stored record differs."""

    code = "audit_mismatch"

    def __init__(self, height: int, what: str, *, table: bytes | None = None) -> None:
        super().__init__(f"height {height}: {what}")
        self.height = height
        """The height the difference belongs to (the head for whole-state findings)."""
        self.what = what
        """What differs, for a person."""
        self.table = table
        """The schema prefix of the stored record that differs, when the replay knows
        it (the audit names the table; an import from a file has none)."""


class AuditDamage(NodeError):
    """Raised when the audited database has a file damaged, missing or cut short."""

    code = "audit_damage"


class ExportFormatError(NodeError):
    """Raised when an export file is not one this node reads, or is cut short."""

    code = "export_format"
