"""runtime: segments compute, the interpreter feeds them, the feeder drives an owner's batches."""

from splitnet.runtime.feeder import Feeder
from splitnet.runtime.interpreter import Interpreter
from splitnet.runtime.replicas import Replicas
from splitnet.runtime.segment import Segment

__all__ = ["Feeder", "Interpreter", "Replicas", "Segment"]
