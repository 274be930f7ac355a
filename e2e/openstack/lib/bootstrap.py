#!/usr/bin/python3
"""One-shot set-up steps for e2e/openstack/up.sh, one python start each.

  bootstrap.py keys KEYSTONE_ETC_DIR
      fernet and credential key repositories (what keystone-manage
      fernet_setup/credential_setup write), without two more python starts.
  bootstrap.py rabbit-defs OUT_JSON CLOUD=PASSWORD...
      RabbitMQ definitions: one vhost and one user per cloud, each user
      allowed on its own vhost only. Loaded by RabbitMQ at boot, so no
      rabbitmqctl (an Erlang VM start per call) is needed.
  bootstrap.py nova-db NOVA_CONF CELL0_URL
      nova-manage api_db sync + cell_v2 map_cell0 + create_cell + db sync,
      in one process.
  bootstrap.py neutron-db NEUTRON_CONF ML2_CONF
      Neutron's schema on sqlite (its migrations are MySQL/PostgreSQL only):
      create the current schema from the models, then stamp alembic heads.
  bootstrap.py identity SPEC_JSON
      after keystone-manage bootstrap: service project, service users with
      admin+service roles, and the catalog (idempotent).
  bootstrap.py ready SPEC_JSON
      waits until every compute is up in Nova, mapped, and in Placement with
      its architecture trait, cinder-volume is up and Neutron answers; then
      creates the flavors and the images of the cloud (idempotent).
"""
import base64
import hashlib
import json
import os
import sys
import time


def log(msg):
    print("[bootstrap %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# --------------------------------------------------------------------------- keys
def cmd_keys(etc_dir):
    for repo in ("fernet-keys", "credential-keys"):
        path = os.path.join(etc_dir, repo)
        os.makedirs(path, mode=0o700, exist_ok=True)
        for index in ("0", "1"):  # 0 = staged, 1 = primary
            key_file = os.path.join(path, index)
            if os.path.exists(key_file):
                continue
            with open(key_file, "w") as fh:
                fh.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
            os.chmod(key_file, 0o600)


# --------------------------------------------------------------------------- rabbit
def _rabbit_hash(password):
    # rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)), 4-byte salt
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def cmd_rabbit_defs(out, *pairs):
    defs = {"users": [], "vhosts": [], "permissions": []}
    for pair in pairs:
        name, password = pair.split("=", 1)
        defs["users"].append({"name": name, "password_hash": _rabbit_hash(password),
                              "hashing_algorithm": "rabbit_password_hashing_sha256",
                              "tags": []})
        defs["vhosts"].append({"name": name})
        defs["permissions"].append({"user": name, "vhost": name, "configure": ".*",
                                    "write": ".*", "read": ".*"})
    with open(out, "w") as fh:
        json.dump(defs, fh, indent=1)


# --------------------------------------------------------------------------- nova db
def cmd_nova_db(nova_conf, cell0_url):
    from nova.cmd import manage  # nova.cmd monkey-patches eventlet on import
    from nova import config, objects
    config.parse_args(["nova-manage", "--config-file", nova_conf])
    objects.register_all()
    steps = (
        ("api_db sync", lambda: manage.ApiDbCommands().sync(), (0, None)),
        ("map_cell0", lambda: manage.CellV2Commands().map_cell0(database_connection=cell0_url),
         (0, None)),
        # 2 = a cell of that name already exists
        ("create_cell cell1", lambda: manage.CellV2Commands().create_cell(name="cell1"),
         (0, 2, None)),
        ("db sync", lambda: manage.DbCommands().sync(), (0, None)),
    )
    for name, step, ok in steps:
        rc = step()
        if rc not in ok:
            sys.exit("nova %s returned %s" % (name, rc))
        log("nova %s done" % name)


# --------------------------------------------------------------------------- neutron db
def cmd_neutron_db(neutron_conf, ml2_conf):
    import configparser
    import sqlalchemy
    from neutron.db.migration.models import head
    from neutron.db.migration import cli  # has its own ConfigOpts, parsed from sys.argv
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(neutron_conf)
    engine = sqlalchemy.create_engine(ini["database"]["connection"])
    if not sqlalchemy.inspect(engine).has_table("alembic_version"):
        head.get_metadata().create_all(engine)
        log("neutron schema created from models")
    engine.dispose()
    sys.argv = ["neutron-db-manage", "--config-file", neutron_conf, "--config-file", ml2_conf,
                "stamp", "heads"]
    cli.main()


# --------------------------------------------------------------------------- REST helpers
def _session(spec):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3
    auth = v3.Password(auth_url=spec["auth_url"], username="admin",
                       password=spec["admin_password"], project_name="admin",
                       user_domain_id="default", project_domain_id="default")
    return session.Session(auth=auth)


def _api(sess, spec, service_type, microversion=None):
    from keystoneauth1 import adapter
    return adapter.Adapter(sess, service_type=service_type, interface="public",
                           region_name=spec["region"], default_microversion=microversion)


def _first(items):
    return items[0] if items else None


# --------------------------------------------------------------------------- identity
def cmd_identity(spec_file):
    spec = json.load(open(spec_file))
    sess = _session(spec)
    from keystoneauth1 import adapter
    ks = adapter.Adapter(sess, endpoint_override=spec["auth_url"])

    def find(kind, key, **query):
        return _first(ks.get("/%s" % kind, params=query).json()[key])

    project = find("projects", "projects", name="service", domain_id="default")
    if project is None:
        project = ks.post("/projects", json={"project": {
            "name": "service", "domain_id": "default",
            "description": "service users of this cloud"}}).json()["project"]
    roles = []
    for role_name in ("admin", "service"):
        role = find("roles", "roles", name=role_name)
        if role is None:
            role = ks.post("/roles", json={"role": {"name": role_name}}).json()["role"]
        roles.append(role)
    for user_name in spec["service_users"]:
        user = find("users", "users", name=user_name, domain_id="default")
        if user is None:
            user = ks.post("/users", json={"user": {
                "name": user_name, "domain_id": "default", "enabled": True,
                "password": spec["service_password"],
                "default_project_id": project["id"]}}).json()["user"]
        # an existing user keeps its password: changing it (even to the same value) revokes
        # every token the running services hold, and they all fail one request to notice
        for role in roles:
            ks.put("/projects/%s/users/%s/roles/%s" % (project["id"], user["id"], role["id"]))
    for service_type, name, url in spec["catalog"]:
        svc = _first([s for s in ks.get("/services", params={"type": service_type})
                      .json()["services"] if s["name"] == name])
        if svc is None:
            svc = ks.post("/services", json={"service": {
                "type": service_type, "name": name, "enabled": True}}).json()["service"]
        have = {(e["interface"], e["region_id"]): e for e in
                ks.get("/endpoints", params={"service_id": svc["id"]}).json()["endpoints"]}
        for interface in ("public", "internal", "admin"):
            ep = have.get((interface, spec["region"]))
            if ep is None:
                ks.post("/endpoints", json={"endpoint": {
                    "service_id": svc["id"], "interface": interface, "url": url,
                    "region_id": spec["region"], "enabled": True}})
            elif ep["url"] != url:
                ks.patch("/endpoints/%s" % ep["id"], json={"endpoint": {"url": url}})
    log("%s: service project, %d service users, %d catalog services" % (
        spec["cloud"], len(spec["service_users"]), len(spec["catalog"])))


# --------------------------------------------------------------------------- ready
def _compute_state(nova, placement, cinder, neutron, spec):
    want = set(spec["computes"])
    services = nova.get("/os-services", params={"binary": "nova-compute"}).json()["services"]
    up = {s["host"] for s in services if s["state"] == "up" and s["status"] == "enabled"}
    hypervisors = {h["hypervisor_hostname"] for h in
                   nova.get("/os-hypervisors").json()["hypervisors"]}
    with_trait = set()
    for rp in placement.get("/resource_providers").json()["resource_providers"]:
        if rp["name"] in want:
            traits = placement.get("/resource_providers/%s/traits" % rp["uuid"]).json()["traits"]
            if spec["trait"] in traits:
                with_trait.add(rp["name"])
    volume_up = any(s["binary"] == "cinder-volume" and s["state"] == "up"
                    for s in cinder.get("/os-services").json()["services"])
    neutron.get("/v2.0/networks")
    missing = {
        "nova-compute up": sorted(want - up),
        "hypervisors": sorted(want - hypervisors),
        "placement %s" % spec["trait"]: sorted(want - with_trait),
    }
    missing = {k: v for k, v in missing.items() if v}
    if not volume_up:
        missing["cinder-volume"] = "not up"
    return missing


def cmd_ready(spec_file):
    spec = json.load(open(spec_file))
    deadline = time.time() + float(spec.get("timeout", 300))
    sess = _session(spec)
    nova = _api(sess, spec, "compute", "2.53")
    placement = _api(sess, spec, "placement", "1.6")
    cinder = _api(sess, spec, "volumev3")
    neutron = _api(sess, spec, "network")
    glance = _api(sess, spec, "image")
    last = None
    while True:
        try:
            last = _compute_state(nova, placement, cinder, neutron, spec)
            if not last:
                break
        except Exception as exc:  # APIs still starting: keep polling until the deadline
            last = "%s: %s" % (type(exc).__name__, exc)
        if time.time() > deadline:
            sys.exit("%s not ready: %s" % (spec["cloud"], last))
        time.sleep(2)
    log("%s: computes %s up with %s" % (spec["cloud"], ", ".join(spec["computes"]),
                                         spec["trait"]))

    flavors = {f["name"] for f in nova.get("/flavors").json()["flavors"]}
    for name, vcpus, ram, disk in spec["flavors"]:
        if name not in flavors:
            nova.post("/flavors", json={"flavor": {
                "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
                "os-flavor-access:is_public": True}})
    payload = b"\0" * 65536  # the fake driver never reads it; Glance needs some bytes
    for image in spec["images"]:
        found = glance.get("/v2/images", params={"name": image["name"]}).json()["images"]
        img = _first(found)
        if img is None:
            body = {"name": image["name"], "disk_format": "raw", "container_format": "bare",
                    "visibility": "public"}
            body.update(image["properties"])
            img = glance.post("/v2/images", json=body).json()
        if img["status"] == "queued":
            glance.put("/v2/images/%s/file" % img["id"], data=payload,
                       headers={"Content-Type": "application/octet-stream"})
    net = spec["network"]
    network = _first(neutron.get("/v2.0/networks", params={"name": net["name"]}).json()["networks"])
    if network is None:
        network = neutron.post("/v2.0/networks", json={"network": {
            "name": net["name"], "shared": True, "provider:network_type": "flat",
            "provider:physical_network": net["physnet"]}}).json()["network"]
    subnets = neutron.get("/v2.0/subnets", params={"network_id": network["id"]}).json()["subnets"]
    if not subnets:
        # no DHCP agent here; Nova still reports the fixed IP Neutron allocated
        neutron.post("/v2.0/subnets", json={"subnet": {
            "network_id": network["id"], "name": net["subnet"], "ip_version": 4,
            "cidr": net["cidr"], "enable_dhcp": False}})
    log("%s: flavors %s; images %s; shared network %s %s" % (
        spec["cloud"], ", ".join(f[0] for f in spec["flavors"]),
        ", ".join("%s(%s)" % (i["name"], i["properties"]["hw_architecture"])
                  for i in spec["images"]), net["name"], net["cidr"]))


COMMANDS = {
    "keys": cmd_keys,
    "rabbit-defs": cmd_rabbit_defs,
    "nova-db": cmd_nova_db,
    "neutron-db": cmd_neutron_db,
    "identity": cmd_identity,
    "ready": cmd_ready,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit("usage: bootstrap.py {%s} ..." % ",".join(COMMANDS))
    COMMANDS[sys.argv[1]](*sys.argv[2:])
