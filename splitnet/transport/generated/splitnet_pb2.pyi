from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TensorHeader(_message.Message):
    __slots__ = ("dtype", "shape", "nbytes")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    nbytes: int
    def __init__(self, dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., nbytes: _Optional[int] = ...) -> None: ...

class TaskHeader(_message.Message):
    __slots__ = ("owner", "stage", "batch", "round", "sender", "tensor", "torrent_json")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    TORRENT_JSON_FIELD_NUMBER: _ClassVar[int]
    owner: int
    stage: int
    batch: int
    round: int
    sender: int
    tensor: TensorHeader
    torrent_json: str
    def __init__(self, owner: _Optional[int] = ..., stage: _Optional[int] = ..., batch: _Optional[int] = ..., round: _Optional[int] = ..., sender: _Optional[int] = ..., tensor: _Optional[_Union[TensorHeader, _Mapping]] = ..., torrent_json: _Optional[str] = ...) -> None: ...

class TensorFrame(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: TaskHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[TaskHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class BlobHeader(_message.Message):
    __slots__ = ("kind", "round", "sender", "nbytes", "meta_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    META_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    round: int
    sender: int
    nbytes: int
    meta_json: str
    def __init__(self, kind: _Optional[str] = ..., round: _Optional[int] = ..., sender: _Optional[int] = ..., nbytes: _Optional[int] = ..., meta_json: _Optional[str] = ...) -> None: ...

class BlobFrame(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: BlobHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[BlobHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("client", "fingerprint", "facts_json", "torrent_port", "tensor_port", "run_id")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    FACTS_JSON_FIELD_NUMBER: _ClassVar[int]
    TORRENT_PORT_FIELD_NUMBER: _ClassVar[int]
    TENSOR_PORT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    client: int
    fingerprint: str
    facts_json: str
    torrent_port: int
    tensor_port: int
    run_id: str
    def __init__(self, client: _Optional[int] = ..., fingerprint: _Optional[str] = ..., facts_json: _Optional[str] = ..., torrent_port: _Optional[int] = ..., tensor_port: _Optional[int] = ..., run_id: _Optional[str] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("client", "fingerprint", "facts_json", "torrent_port", "tensor_port", "run_id")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    FACTS_JSON_FIELD_NUMBER: _ClassVar[int]
    TORRENT_PORT_FIELD_NUMBER: _ClassVar[int]
    TENSOR_PORT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    client: int
    fingerprint: str
    facts_json: str
    torrent_port: int
    tensor_port: int
    run_id: str
    def __init__(self, client: _Optional[int] = ..., fingerprint: _Optional[str] = ..., facts_json: _Optional[str] = ..., torrent_port: _Optional[int] = ..., tensor_port: _Optional[int] = ..., run_id: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("client",)
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    client: int
    def __init__(self, client: _Optional[int] = ...) -> None: ...

class PingReply(_message.Message):
    __slots__ = ("client", "round")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    client: int
    round: int
    def __init__(self, client: _Optional[int] = ..., round: _Optional[int] = ...) -> None: ...

class RoundDoneRequest(_message.Message):
    __slots__ = ("client", "round", "stats_json")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    STATS_JSON_FIELD_NUMBER: _ClassVar[int]
    client: int
    round: int
    stats_json: str
    def __init__(self, client: _Optional[int] = ..., round: _Optional[int] = ..., stats_json: _Optional[str] = ...) -> None: ...

class StatesRequest(_message.Message):
    __slots__ = ("round", "client", "weights_json")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_JSON_FIELD_NUMBER: _ClassVar[int]
    round: int
    client: int
    weights_json: str
    def __init__(self, round: _Optional[int] = ..., client: _Optional[int] = ..., weights_json: _Optional[str] = ...) -> None: ...

class NoticeRequest(_message.Message):
    __slots__ = ("client", "reason")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client: int
    reason: str
    def __init__(self, client: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TensorAck(_message.Message):
    __slots__ = ("error", "kind")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    error: str
    kind: str
    def __init__(self, error: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...
