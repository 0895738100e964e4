"""``splitnet status`` lists splitnet's own clients only (Note: whose containers, ops/status.py),
and a ``CLIENT_NUMBER`` that is not a number neither crashes nor hides a row. No Docker: the
engine is a stand-in with the SDK's shape."""

from types import SimpleNamespace

from splitnet.ops.status import _compose_rows, _swarm_rows, format_status, row_order

SERVICE = "com.docker.compose.service"
PROJECT = "com.docker.compose.project"


def _container(name, service, env, project="p", status="exited"):
    return SimpleNamespace(name=name, status=status,
                           labels={SERVICE: service, PROJECT: project},
                           attrs={"Config": {"Env": env}, "State": {}},
                           exec_run=lambda cmd: (0, b"healthy (round 3)"))


class _Engine:
    def __init__(self, containers=(), services=()):
        self.containers = SimpleNamespace(list=lambda all, filters: list(containers))
        self.services = SimpleNamespace(list=lambda: list(services))
        self.nodes = SimpleNamespace(list=lambda: [])


def test_only_containers_with_a_splitnet_clients_environment_are_listed():
    engine = _Engine([
        _container("p-client2-1", "client2", ["CLIENT_NUMBER=2", "SPLITNET_TOKEN=t" * 2]),
        _container("p-client1-1", "client1", ["CLIENT_NUMBER=1", "SPLITNET_TOKEN=x"],
                   status="running"),
        _container("web-client-1", "client", ["NODE_ENV=production"], project="web"),
        _container("other-client1-1", "client1", ["CLIENT_NUMBER=1"], project="other"),
        _container("db-1", "db", ["POSTGRES_PASSWORD=x"], project="web"),
    ])
    rows = sorted(_compose_rows(engine, None), key=row_order)
    assert [r["name"] for r in rows] == ["p-client1-1", "p-client2-1"]
    assert rows[0]["round"] == "3" and rows[0]["where"] == "compose p"


def test_a_client_number_that_is_not_a_number_is_shown_and_sorted_last():
    engine = _Engine([
        _container("p-b", "clientb", ["CLIENT_NUMBER=abc", "SPLITNET_TOKEN_FILE=/run/t"]),
        _container("p-e", "cliente", ["CLIENT_NUMBER=", "SPLITNET_TOKEN=x"]),
        _container("p-a", "client10", ["CLIENT_NUMBER=10", "SPLITNET_TOKEN=x"]),
        _container("p-c", "client9", ["CLIENT_NUMBER=9", "SPLITNET_TOKEN=x"]),
    ])
    rows = sorted(_compose_rows(engine, None), key=row_order)
    assert [r["client"] for r in rows] == ["9", "10", "abc", ""]
    assert "abc" in format_status(rows)


def _service(name, env):
    spec = {"Spec": {"TaskTemplate": {"ContainerSpec": {"Env": env}}}}
    task = {"Status": {"State": "running"}, "NodeID": "n1"}
    return SimpleNamespace(name=name, attrs=spec, tasks=lambda: [task])


def test_swarm_services_of_other_stacks_are_not_listed():
    engine = _Engine(services=[
        _service("s_client1", ["CLIENT_NUMBER=1", "SPLITNET_TOKEN_FILE=/run/secrets/t"]),
        _service("s_client2", ["CLIENT_NUMBER=two", "SPLITNET_TOKEN_FILE=/run/secrets/t"]),
        _service("queue_worker", ["CLIENT_NUMBER=7"]),
        SimpleNamespace(name="bare", attrs={"Spec": {}}, tasks=lambda: []),
    ])
    rows = sorted(_swarm_rows(engine), key=row_order)
    assert [(r["name"], r["client"]) for r in rows] == [("s_client1", "1"), ("s_client2", "two")]
