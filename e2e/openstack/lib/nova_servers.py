#!/usr/bin/python3
"""Print, as JSON, every server of one cloud (all projects) with its status,
metadata, flavor (vcpus, ram, disk) and attached volumes: what the end-to-end tests compare Yunshu's
objects with.

usage: nova_servers.py STATE CLOUD
"""
import json
import sys

from keystoneauth1 import adapter, session
from keystoneauth1.identity import v3


def main():
    state, cloud = sys.argv[1:3]
    c = json.load(open("%s/clouds.json" % state))[cloud]
    sess = session.Session(auth=v3.Password(
        auth_url=c["auth_url"], username=c["username"], password=c["password"],
        project_name=c["project_name"], user_domain_name=c["user_domain_name"],
        project_domain_name=c["project_domain_name"]))
    nova = adapter.Adapter(sess, service_type="compute", interface="public",
                           region_name=c["region_name"], default_microversion="2.52")
    servers = nova.get("/servers/detail", params={"all_tenants": 1, "limit": 1000}).json()["servers"]
    json.dump([{"id": s["id"], "name": s["name"], "status": s["status"],
                "metadata": s.get("metadata", {}), "project": s.get("tenant_id"),
                "flavor": s.get("flavor", {}),
                "volumes": [v["id"] for v in s.get("os-extended-volumes:volumes_attached", [])]}
               for s in servers], sys.stdout)


if __name__ == "__main__":
    main()
