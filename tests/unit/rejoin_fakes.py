"""A node stand-in for run_rejoining's unit tests (no network)."""

from types import SimpleNamespace


class FakeNode:
    """Just what run_rejoining reads of a node; ``run`` raises ``error``."""

    def __init__(self, plan, error: Exception, joined: bool) -> None:
        self.me, self.plan, self.joined, self.stopped = 2, plan, joined, False
        self.results = SimpleNamespace(run_id=None)
        self.metrics = SimpleNamespace(client="2", rejoins=SimpleNamespace(
            labels=lambda *_: SimpleNamespace(inc=lambda: None)))
        self.error = error

    async def run(self):
        if self.error is None:
            return {"done": True}
        raise self.error
