#!/usr/bin/python3
"""Start nova-compute with e2e/openstack/lib/ys_fake_virt.py as its driver.

Nova (Zed) imports a compute driver only as nova.virt.<compute_driver>, so
this launcher registers our module under that name before handing over to
Nova's own nova-compute entry point. Use compute_driver =
ys_fake_virt.ArchFakeDriver in nova.conf.
"""
import sys

from nova.cmd import compute  # first: nova.cmd applies eventlet monkey patching

import nova.virt
import ys_fake_virt

sys.modules["nova.virt.ys_fake_virt"] = ys_fake_virt
nova.virt.ys_fake_virt = ys_fake_virt

if __name__ == "__main__":
    sys.argv[0] = "nova-compute"
    sys.exit(compute.main())
