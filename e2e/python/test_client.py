"""A client in another language: Python grpcio, with stubs generated from
Yunshu's protos at test time, creates, lists and watches an instance on a
running `yunshu serve`.

Environment: YUNSHU_GRPC (host:port), YUNSHU_TOKEN (an API token of an
operator of YUNSHU_DEPARTMENT, default `health`). The Rust test
`python_client` in controller/tests starts the server and runs this file.
"""

import importlib
import os
import pathlib
import sys
import tempfile

import grpc
import pytest
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"


@pytest.fixture(scope="module")
def api():
    out = tempfile.mkdtemp(prefix="yunshu-py-")
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    files = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "yunshu" / "api" / "v1").glob("*.proto"))
    rc = protoc.main(["protoc", f"-I{PROTO}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}", *files])
    assert rc == 0, "protoc failed to generate the Python client"
    sys.path.insert(0, out)
    mods = {name: importlib.import_module(f"yunshu.api.v1.{name}") for name in ["common_pb2", "instances_pb2", "instances_pb2_grpc"]}
    return mods


@pytest.fixture(scope="module")
def stub(api):
    channel = grpc.insecure_channel(os.environ["YUNSHU_GRPC"])
    grpc.channel_ready_future(channel).result(timeout=10)
    return api["instances_pb2_grpc"].InstanceServiceStub(channel)


def metadata():
    return [("authorization", f"Bearer {os.environ['YUNSHU_TOKEN']}")]


DEPT = os.environ.get("YUNSHU_DEPARTMENT", "health")


def test_create_list_watch(api, stub):
    pb = api["instances_pb2"]
    common = api["common_pb2"]
    spec = pb.InstanceSpec(vcpu=2, memory_mib=4096, disk_gib=20, image="kylin-v10",
                           constraints=common.Constraints(required_traits=["arch:aarch64"]))
    req = pb.CreateInstanceRequest(parent=f"departments/{DEPT}", instance_id="py-web-1",
                                   instance=pb.Instance(spec=spec), request_id="py-req-1")
    created = stub.CreateInstance(req, metadata=metadata(), timeout=10).instance
    assert created.metadata.name == f"departments/{DEPT}/instances/py-web-1"
    assert created.status.phase == common.PHASE_PENDING

    again = stub.CreateInstance(req, metadata=metadata(), timeout=10).instance
    assert again.metadata.uid == created.metadata.uid, "a retried request id returns the same instance"

    listed = stub.ListInstances(pb.ListInstancesRequest(parent=f"departments/{DEPT}"), metadata=metadata(), timeout=10)
    assert f"departments/{DEPT}/instances/py-web-1" in [i.metadata.name for i in listed.instances]

    events = stub.WatchInstances(pb.WatchInstancesRequest(parent=f"departments/{DEPT}", start_revision=created.metadata.revision),
                                 metadata=metadata(), timeout=10)
    first = next(iter(events))
    assert first.type == common.WATCH_EVENT_TYPE_CREATED
    assert first.instance.metadata.name == created.metadata.name
    events.cancel()


def test_errors_carry_codes(api, stub):
    pb = api["instances_pb2"]
    bad = pb.CreateInstanceRequest(parent=f"departments/{DEPT}", instance_id="py-bad",
                                   instance=pb.Instance(spec=pb.InstanceSpec(vcpu=0, memory_mib=4096, disk_gib=20, image="kylin-v10")),
                                   request_id="py-bad-1")
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateInstance(bad, metadata=metadata(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "instance.spec.vcpu" in err.value.details()

    with pytest.raises(grpc.RpcError) as err:
        stub.ListInstances(pb.ListInstancesRequest(parent=f"departments/{DEPT}"), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
