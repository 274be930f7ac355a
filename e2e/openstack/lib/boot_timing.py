#!/usr/bin/python3
"""Time server create -> ACTIVE and delete -> gone through the Nova API itself.

usage: boot_timing.py IMAGE_ID FLAVOR_NAME NETWORK_NAME|none [COUNT]
Credentials come from the OS_* variables of a cloud's env file. Servers are
created one after another (COUNT, default 3), polled every 0.1 s, and deleted;
no CLI start-up or 5 s CLI poll interval is included, so this is the figure to
hold a control plane's own create-to-ready time against.
"""
import os
import sys
import time

from keystoneauth1 import adapter, session
from keystoneauth1.identity import v3


def main():
    image, flavor_name, network = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    env = os.environ
    sess = session.Session(auth=v3.Password(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name=env["OS_USER_DOMAIN_NAME"],
        project_domain_name=env["OS_PROJECT_DOMAIN_NAME"]))
    kw = dict(interface="public", region_name=env["OS_REGION_NAME"])
    nova = adapter.Adapter(sess, service_type="compute", default_microversion="2.52", **kw)
    neutron = adapter.Adapter(sess, service_type="network", **kw)
    flavor = [f for f in nova.get("/flavors").json()["flavors"] if f["name"] == flavor_name][0]
    if network == "none":
        networks = "none"
    else:
        net = neutron.get("/v2.0/networks", params={"name": network}).json()["networks"][0]
        networks = [{"uuid": net["id"]}]

    def wait(server_id, want, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            r = nova.get("/servers/%s" % server_id, raise_exc=False)
            if r.status_code == 404 and want == "GONE":
                return None
            if r.status_code == 200:
                server = r.json()["server"]
                if server["status"] == want:
                    return server
                if server["status"] == "ERROR":
                    sys.exit("server ERROR: %s" % server.get("fault"))
            time.sleep(0.1)
        sys.exit("timed out waiting for %s on %s" % (want, server_id))

    boots, deletes, addresses = [], [], None
    for i in range(count):
        t0 = time.time()
        sid = nova.post("/servers", json={"server": {
            "name": "ys-timing-%d" % i, "imageRef": image, "flavorRef": flavor["id"],
            "networks": networks, "tags": ["ys-timing"]}}).json()["server"]["id"]
        server = wait(sid, "ACTIVE")
        boots.append(time.time() - t0)
        addresses = addresses or server.get("addresses")
        t0 = time.time()
        nova.delete("/servers/%s" % sid)
        wait(sid, "GONE")
        deletes.append(time.time() - t0)

    def spread(xs):
        xs = sorted(xs)
        return "min %.2fs median %.2fs max %.2fs" % (xs[0], xs[len(xs) // 2], xs[-1])

    print("api create->ACTIVE x%d: %s" % (count, spread(boots)))
    print("api delete->gone   x%d: %s" % (count, spread(deletes)))
    print("addresses of the first: %s" % {k: [a["addr"] for a in v] for k, v in (addresses or {}).items()})
    print("MEDIAN_BOOT=%.2f" % sorted(boots)[len(boots) // 2])


if __name__ == "__main__":
    main()
