"""The core's answers to misuse by its shell: each raises a ConsensusError subclass."""

from __future__ import annotations

from typing import Any

import pytest

from consensus.errors import ConsensusError, UnknownEventError
from consensus.events import ScheduleTimeout, TimeoutKind
from tests.consensus.test_core_transcripts import START, node


class NotAnEvent:
    """Shaped like BlockValidated, the type the old dispatch fell through to."""

    block_hash = b""
    valid = True


@pytest.mark.parametrize("thing", [NotAnEvent(), None, "TxsAvailable",
                                   ScheduleTimeout(1, 0, TimeoutKind.PROPOSE, 1)])  # an effect
def test_invalid_unknown_event_raises(thing: Any) -> None:
    started = node(3)
    started.process_event(START)
    for core in (node(3), started):  # before StartHeight too: unknown, not "not started"
        with pytest.raises(UnknownEventError) as raised:
            core.process_event(thing)
        assert isinstance(raised.value, ConsensusError)
        assert raised.value.code == "unknown_event"
        assert type(thing).__name__ in raised.value.message

