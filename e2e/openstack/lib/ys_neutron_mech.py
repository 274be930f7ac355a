"""An ML2 mechanism driver that binds every port at once, for agent-less test clouds.

Without agents no real mechanism driver can bind a port, Nova then sees
binding_failed and the server goes to ERROR; with no mechanism driver at all a
server can only be booted without a NIC and never has an address. This driver
accepts the first segment offered on any host and marks the port ACTIVE, so a
server booted on a network gets a port with a fixed IP that Nova reports in
the server's addresses. Nothing is plugged anywhere: there is no data plane.

Registered as ML2 mechanism driver "ys_loopback" through the entry point in
ys_e2e_openstack-0.dist-info beside this file (Neutron loads mechanism drivers
by entry-point name only).
"""
from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api


class LoopbackMechanismDriver(api.MechanismDriver):
    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: False},
                                status=constants.PORT_STATUS_ACTIVE)
            return
