"""A Yunshu adapter in Python: the whole of `yunshu.adapter.v1`, served with
grpcio, for a cloud Yunshu has no in-tree adapter for.

This one drives a small cloud it keeps in memory (instances that take half
a second to boot, volumes that attach), which makes it the starting point
for an integrator: replace the `Cloud` class with calls to the vendor's
API and keep the service as it is. Stubs are generated from Yunshu's protos
at start, so it needs only `grpcio` and `grpcio-tools`.

    python3 adapters/remote/examples/python/adapter.py --port 50061 --token-file t

prints `adapter listening on 127.0.0.1:PORT` once it serves (`--port 0`
picks a free port). Register it as a Foundation with `adapter: remote`,
`endpoint: http://127.0.0.1:PORT` and credentials holding the same `token`;
check it with `yunshu-adapter-conformance --endpoint http://127.0.0.1:PORT
--token-file t --instance vcpu=1,memory_mib=512,disk_gib=1,image=kylin-v10
--volume size_gib=1`.
"""

import argparse
import hmac
import importlib
import pathlib
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent import futures

import grpc
from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[4] / "proto"
BOOT_SECONDS = 0.5


def load_stubs():
    """Generates the Python stubs of adapter.proto into a temporary directory."""
    out = tempfile.mkdtemp(prefix="yunshu-adapter-py-")
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(PROTO_ROOT / "yunshu/adapter/v1/adapter.proto")])
    if rc != 0:
        sys.exit("protoc failed to generate the adapter stubs")
    sys.path.insert(0, out)
    pb = importlib.import_module("yunshu.adapter.v1.adapter_pb2")
    rpc = importlib.import_module("yunshu.adapter.v1.adapter_pb2_grpc")
    return pb, rpc


class Refused(Exception):
    """A call the cloud refuses, with the gRPC code Yunshu maps to an error kind."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Cloud:
    """The vendor's cloud. Everything Yunshu creates carries the owner's uid,
    so a repeated create finds the first resource instead of making another."""

    def __init__(self, images, vcpu, memory_mib, disk_gib, volume_gib):
        self.lock = threading.Lock()
        self.images = set(images)
        self.capacity = {"vcpu": vcpu, "memory_mib": memory_mib, "disk_gib": disk_gib,
                         "volume_gib": volume_gib}
        self.resources = {}  # (kind, uid) -> dict

    def create(self, kind, owner, fields):
        with self.lock:
            found = self.resources.get((kind, owner.uid))
            if found:
                return dict(found)
            if kind == "instance" and fields["image"] not in self.images:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"image {fields['image']} is not known on this cloud")
            r = {"id": f"{kind[:3]}-{uuid.uuid4().hex[:12]}", "kind": kind, "uid": owner.uid,
                 "department": owner.department, "name": owner.name, "created": time.monotonic(),
                 "attached_to": None, "power": "running", **fields}
            self.resources[(kind, owner.uid)] = r
            return dict(r)

    def get(self, kind, uid):
        with self.lock:
            r = self.resources.get((kind, uid))
            if r is None:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"{kind} with uid {uid} not found")
            return dict(r)

    def delete(self, kind, uid):
        with self.lock:
            gone = self.resources.pop((kind, uid), None)
            if gone and kind == "instance":
                for r in self.resources.values():
                    if r["attached_to"] == gone["id"]:
                        r["attached_to"] = None

    def attach(self, volume_uid, instance_uid):
        with self.lock:
            volume = self.resources.get(("volume", volume_uid))
            instance = self.resources.get(("instance", instance_uid))
            if volume is None or instance is None:
                raise Refused(grpc.StatusCode.NOT_FOUND, "the volume or the instance does not exist")
            if volume["attached_to"] not in (None, instance["id"]):
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION, "the volume is attached elsewhere")
            volume["attached_to"] = instance["id"]

    def detach(self, volume_uid):
        with self.lock:
            volume = self.resources.get(("volume", volume_uid))
            if volume is None:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"volume with uid {volume_uid} not found")
            volume["attached_to"] = None

    def find_instance(self, department, name):
        with self.lock:
            for r in self.resources.values():
                if r["kind"] == "instance" and r["department"] == department and r["name"] == name:
                    return r["uid"]
        return None

    def act(self, uid, action, resize=None):
        with self.lock:
            r = self.resources.get(("instance", uid))
            if r is None:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"instance with uid {uid} not found")
            if action == "start":
                r["power"] = "running"
            elif action == "stop":
                r["power"] = "stopped"
            elif action == "resize":
                r["vcpu"], r["memory_mib"] = resize

    def owned(self, kind):
        with self.lock:
            return [dict(r) for r in self.resources.values() if r["kind"] == kind]

    def used(self):
        with self.lock:
            used = {"vcpu": 0, "memory_mib": 0, "disk_gib": 0, "volume_gib": 0}
            for r in self.resources.values():
                if r["kind"] == "instance":
                    for k in ("vcpu", "memory_mib", "disk_gib"):
                        used[k] += r[k]
                else:
                    used["volume_gib"] += r["size_gib"]
            return used


def make_service(pb, rpc, cloud, token, traits):
    kinds = {pb.RESOURCE_KIND_INSTANCE: "instance", pb.RESOURCE_KIND_VOLUME: "volume"}

    def described(r):
        booted = time.monotonic() - r["created"] >= BOOT_SECONDS
        if r["kind"] == "instance":
            status = ("ACTIVE" if r["power"] == "running" else "SHUTOFF") if booted else "BUILD"
            addresses = [f"10.0.0.{int(r['id'][-2:], 16) % 250 + 2}"] if booted else []
        else:
            status = ("in-use" if r["attached_to"] else "available") if booted else "creating"
            addresses = []
        return pb.CloudResource(id=r["id"], owner_uid=r["uid"], status=status, ready=booted,
                                failed=False, addresses=addresses, message="")

    def guarded(method):
        """Checks the bearer token and turns a refusal into its status."""

        def call(self, request, context):
            if token is not None:
                given = dict(context.invocation_metadata()).get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")
            try:
                return method(self, request, context)
            except Refused as e:
                context.abort(e.code, str(e))

        return call

    def kind_of(value, context):
        if value not in kinds:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this cloud has instances and volumes only")
        return kinds[value]

    class Service(rpc.AdapterServiceServicer):
        @guarded
        def GetCapabilities(self, request, context):
            return pb.GetCapabilitiesResponse(kinds=list(kinds), issues_credentials=False,
                                              name="example-python", version="0.1.0")

        @guarded
        def Probe(self, request, context):
            started = time.monotonic()
            used = cloud.used()
            classes = {"vcpu": pb.RESOURCE_CLASS_VCPU, "memory_mib": pb.RESOURCE_CLASS_MEMORY_MIB,
                       "disk_gib": pb.RESOURCE_CLASS_DISK_GIB, "volume_gib": pb.RESOURCE_CLASS_VOLUME_GIB}
            inventory = [pb.Inventory(resource_class=c, total=cloud.capacity[k], used=used[k],
                                      max_unit=cloud.capacity[k]) for k, c in classes.items()]
            response = pb.ProbeResponse(health=pb.HEALTH_READY, inventory=inventory, traits=traits)
            response.latency.FromNanoseconds(int((time.monotonic() - started) * 1e9))
            return response

        @guarded
        def EnsureTenant(self, request, context):
            if not request.department:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "department is required")
            return pb.EnsureTenantResponse(tenant_id=f"tenant-{request.department}",
                                           user=f"yunshu-{request.department}")

        @guarded
        def CreateInstance(self, request, context):
            s = request.spec
            r = cloud.create("instance", request.owner, {"vcpu": s.vcpu, "memory_mib": s.memory_mib,
                                                         "disk_gib": s.disk_gib, "image": s.image})
            if s.power == pb.POWER_STATE_STOPPED:
                cloud.act(request.owner.uid, "stop")
            return pb.CreateInstanceResponse(resource=described(cloud.get("instance", r["uid"])))

        @guarded
        def CreateVolume(self, request, context):
            r = cloud.create("volume", request.owner, {"size_gib": request.spec.size_gib})
            if request.spec.attach_to:
                target = cloud.find_instance(request.owner.department, request.spec.attach_to)
                if target:
                    cloud.attach(request.owner.uid, target)
            return pb.CreateVolumeResponse(resource=described(cloud.get("volume", r["uid"])))

        @guarded
        def CreateBucket(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this cloud has no object storage")

        @guarded
        def GetResource(self, request, context):
            kind = kind_of(request.kind, context)
            return pb.GetResourceResponse(resource=described(cloud.get(kind, request.owner.uid)))

        @guarded
        def DeleteResource(self, request, context):
            cloud.delete(kind_of(request.kind, context), request.owner.uid)
            return pb.DeleteResourceResponse()

        @guarded
        def InstanceAction(self, request, context):
            which = request.WhichOneof("action")
            if which is None:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "exactly one action is required")
            resize = (request.resize.vcpu, request.resize.memory_mib) if which == "resize" else None
            cloud.act(request.owner.uid, which, resize)
            return pb.InstanceActionResponse()

        @guarded
        def ListOwnedResources(self, request, context):
            kind = kind_of(request.kind, context)
            return iter([pb.ListOwnedResourcesResponse(resource=described(r)) for r in cloud.owned(kind)])

        @guarded
        def IssueCredentials(self, request, context):
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this cloud issues no credentials")

        @guarded
        def RevokeCredentials(self, request, context):
            return pb.RevokeCredentialsResponse()

        @guarded
        def AttachVolume(self, request, context):
            cloud.attach(request.volume.uid, request.instance.uid)
            return pb.AttachVolumeResponse()

        @guarded
        def DetachVolume(self, request, context):
            cloud.detach(request.volume.uid)
            return pb.DetachVolumeResponse()

        @guarded
        def RevokeExpiredCredentials(self, request, context):
            return pb.RevokeExpiredCredentialsResponse(revoked=0)

    return Service()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=50061, help="port on 127.0.0.1; 0 picks a free one")
    parser.add_argument("--token-file", help="require the bearer token in this file on every call")
    parser.add_argument("--traits", default="arch:x86_64", help="comma-separated traits the probe reports")
    parser.add_argument("--images", default="kylin-v10,openeuler-22.03",
                        help="comma-separated logical images the cloud knows")
    parser.add_argument("--vcpu", type=int, default=64, help="vCPUs the cloud has")
    args = parser.parse_args()

    token = pathlib.Path(args.token_file).read_text().strip() if args.token_file else None
    pb, rpc = load_stubs()
    cloud = Cloud(args.images.split(","), args.vcpu, args.vcpu * 4096, args.vcpu * 50, args.vcpu * 100)
    traits = [t for t in args.traits.split(",") if t]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    rpc.add_AdapterServiceServicer_to_server(make_service(pb, rpc, cloud, token, traits), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"adapter listening on 127.0.0.1:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=2))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
