"""The error tree of the storage layer.

Every error carries a stable machine-readable `code` and a message that tells an
operator what to do. Our own bugs are assertions, never StorageError.
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of all errors raised by the storage layer."""

    code: str = "storage_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DataDirLockedError(StorageError):
    """Raised when the database directory is held open by another process."""

    code = "data_dir_locked"


class CorruptionError(StorageError):
    """Raised when the database is damaged or its contents contradict each other.

    Raised as itself when LevelDB finds a file damaged (a checksum that fails, a
    missing file); as InconsistentDataError when intact records contradict each other.
    """

    code = "corruption"


class InconsistentDataError(CorruptionError):
    """Raised when records that read back intact (LevelDB's checksums hold) do not
    decode or contradict each other: they were written wrong, not damaged on disk."""

    code = "inconsistent_data"

    def __init__(self, message: str, *, height: int | None = None) -> None:
        super().__init__(message)
        self.height = height
        """The height the record belongs to, where it has one."""


class DiskFullError(StorageError):
    """Raised when a write fails because the disk holding the database is full."""

    code = "disk_full"


class SchemaVersionError(StorageError):
    """Raised when the database was written by an incompatible storage schema."""

    code = "schema_version"


class GenesisMismatchError(StorageError):
    """Raised when a data directory belongs to a chain with another genesis."""

    code = "genesis_mismatch"


class NotInitializedError(StorageError):
    """Raised when blocks or state are used before the genesis state is committed."""

    code = "not_initialized"


class AlreadyInitializedError(StorageError):
    """Raised when the genesis state is committed a second time."""

    code = "already_initialized"


class NotContiguousError(StorageError):
    """Raised when a block does not extend the head (wrong height or parent hash)."""

    code = "not_contiguous"


class StateRootMismatchError(StorageError):
    """Raised when a block's header state root differs from the root of its changes."""

    code = "state_root_mismatch"


class StalePreparedStateError(StorageError):
    """Raised when a prepared state was computed on another state than the head's."""

    code = "stale_prepared_state"


class BlockMismatchError(StorageError):
    """Raised when a block's certificate, tx results or validator sets do not match it."""

    code = "block_mismatch"


class UnknownHeightError(StorageError):
    """Raised when a height beyond what the store knows is asked for."""

    code = "unknown_height"
