"""Nova's fake virt driver, made to look like a host of one CPU architecture.

Nova's own FakeDriver always claims x86_64 and reports no HW_ARCH_* trait,
so it cannot stand in for a Kunpeng (aarch64) host. This subclass takes the
architecture and the size of the pretend host from the environment of the
nova-compute process:

  YS_FAKE_ARCH     x86_64 | aarch64           (default x86_64)
  YS_FAKE_VCPUS    VCPU inventory             (default 32)
  YS_FAKE_RAM_MB   MEMORY_MB inventory        (default 65536)
  YS_FAKE_DISK_GB  DISK_GB inventory          (default 500)

and reports, for that architecture:
  * supported_instances -> Nova's ImagePropertiesFilter matches an image's
    hw_architecture against it;
  * HW_ARCH_* and a few HW_CPU_* traits on the compute node's resource
    provider -> Placement shows them, and [scheduler]image_metadata_prefilter
    turns an image's hw_architecture into a required trait;
  * cpu_info with arch, vendor and model (os-hypervisors before 2.88).

nova-compute loads it through e2e/openstack/lib/nova_compute.py, which makes
this module importable as nova.virt.ys_fake_virt.
"""
import os

from oslo_serialization import jsonutils

from nova.objects import fields
from nova.virt import fake

_PROFILES = {
    fields.Architecture.X86_64: {
        "traits": ("HW_ARCH_X86_64", "HW_CPU_X86_SSE42", "HW_CPU_X86_AVX2",
                   "HW_CPU_X86_AESNI"),
        "vendor": "Intel",
        "model": "Cascadelake-Server",
        "features": ["sse4.2", "avx2", "aes"],
    },
    fields.Architecture.AARCH64: {
        "traits": ("HW_ARCH_AARCH64", "HW_CPU_AARCH64_FP", "HW_CPU_AARCH64_ASIMD",
                   "HW_CPU_AARCH64_AES", "HW_CPU_AARCH64_SHA2",
                   "HW_CPU_AARCH64_CRC32"),
        "vendor": "HiSilicon",
        "model": "Kunpeng-920",
        "features": ["fp", "asimd", "aes", "sha2", "crc32"],
    },
}


class ArchFakeDriver(fake.FakeDriver):
    def __init__(self, virtapi, read_only=False):
        env = os.environ
        self.arch = env.get("YS_FAKE_ARCH", fields.Architecture.X86_64)
        if self.arch not in _PROFILES:
            raise ValueError("YS_FAKE_ARCH must be one of %s" % sorted(_PROFILES))
        self.profile = _PROFILES[self.arch]
        # FakeDriver.__init__ sizes its Resources from these attributes
        self.vcpus = int(env.get("YS_FAKE_VCPUS", "32"))
        self.memory_mb = int(env.get("YS_FAKE_RAM_MB", "65536"))
        self.local_gb = int(env.get("YS_FAKE_DISK_GB", "500"))
        super().__init__(virtapi, read_only)
        self.host_status_base["supported_instances"] = [
            (self.arch, fields.HVType.FAKE, fields.VMMode.HVM)]

    def get_available_resource(self, nodename):
        status = super().get_available_resource(nodename)
        if status:
            sockets = 2
            status["cpu_info"] = jsonutils.dumps({
                "arch": self.arch,
                "vendor": self.profile["vendor"],
                "model": self.profile["model"],
                "features": self.profile["features"],
                "topology": {"sockets": sockets,
                             "cores": max(1, self.vcpus // sockets),
                             "threads": 1},
            })
        return status

    def get_host_uptime(self):
        # what os-hypervisors/{id}/uptime shows (`openstack hypervisor show` asks for it)
        return " 00:00:00 up 1 day,  0:00,  0 users,  load average: 0.00, 0.00, 0.00"

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(provider_tree, nodename, allocations)
        provider_tree.add_traits(nodename, *self.profile["traits"])
