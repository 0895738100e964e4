"""The one table between splitnet errors, gRPC status codes and refusal kinds."""

from __future__ import annotations

import grpc
import pytest

from splitnet.errors import (
    PeerUnavailable,
    PlanMismatch,
    ProtocolError,
    RuntimeFailure,
    TransferFailed,
)
from splitnet.transport.status import (
    error_for,
    error_of_kind,
    kind_of,
    refused,
    reported,
    status_of,
    transfer_failed,
)


@pytest.mark.parametrize("raised, code, read_back", [
    (ProtocolError("bad"), grpc.StatusCode.INVALID_ARGUMENT, ProtocolError),
    (PlanMismatch("differs"), grpc.StatusCode.FAILED_PRECONDITION, PlanMismatch),
    (PeerUnavailable("gone"), grpc.StatusCode.ABORTED, RuntimeFailure),
    (TransferFailed("cut"), grpc.StatusCode.ABORTED, RuntimeFailure),
    (RuntimeFailure("stop"), grpc.StatusCode.ABORTED, RuntimeFailure),
])
def test_a_handlers_error_comes_back_to_the_caller_as_the_table_says(raised, code, read_back):
    assert status_of(raised) == code
    error = error_for(code, str(raised), 2, "h:1", "did not take round end")
    assert type(error) is read_back and str(raised) in str(error)


def test_unreachable_peers_and_deadlines_read_back_as_peer_unavailable_naming_the_peer():
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        error = error_for(code, "connect failed", 3, "h:1", "did not answer a ping")
        assert type(error) is PeerUnavailable
        assert str(error) == "client 3 (h:1) did not answer a ping: connect failed"


def test_a_plan_mismatch_keeps_the_peers_own_words():
    error = error_for(grpc.StatusCode.FAILED_PRECONDITION, "client 2's plan differs in: model",
                      2, "h:1", "refused to join")
    assert str(error) == "client 2's plan differs in: model"


@pytest.mark.parametrize("raised", [ProtocolError("x"), PlanMismatch("x"), RuntimeFailure("x"),
                                    PeerUnavailable("x")])
def test_refusal_kinds_round_trip_to_the_most_specific_wire_error(raised):
    rebuilt = error_of_kind(kind_of(raised), "text")
    expected = RuntimeFailure if isinstance(raised, PeerUnavailable) else type(raised)
    assert type(rebuilt) is expected


def test_failures_are_transfer_failed_with_the_cause_chained():
    failure = refused(2, "h:1", "protocol", "task 1_3 batch 0: not in the plan")
    assert isinstance(failure, TransferFailed) and isinstance(failure.__cause__, ProtocolError)
    assert str(failure) == "client 2 (h:1) refused a tensor: task 1_3 batch 0: not in the plan"
    cause = OSError("reset")
    assert transfer_failed(2, "h:1", "ended", cause).__cause__ is cause
    gone = PeerUnavailable("client 2 (h:1) stopped")
    assert str(reported(gone)) == str(gone) and reported(gone).__cause__ is gone
    assert reported(failure) is failure
