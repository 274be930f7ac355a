#!/usr/bin/python3
"""Neutron's REST API alone, served by eventlet in this one process.

neutron-server always forks RPC and plugin worker processes, which only
agents would talk to, and there are none here. Under uWSGI, Neutron's
eventlet green threads (its AMQP connection among them) only run while a
request is being served, so RabbitMQ times out the idle connection's
handshake and the next port operation pays a reconnect. So: the API service
of neutron-server, with api_workers = 0 (serve in this process), and nothing
else. Usage: neutron_api.py --config-file neutron.conf --config-file ml2_conf.ini
"""
import neutron.cmd.eventlet  # noqa: F401  (eventlet monkey patching, first)

import os
import signal
import sys

from neutron import server
from neutron import service


def _serve_api():
    api = service.serve_wsgi(service.NeutronApiService)
    # the in-process server installs no handler of its own: leave on TERM/INT at once
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    api.wait()


if __name__ == "__main__":
    sys.argv[0] = "neutron-api"
    sys.exit(server.boot_server(_serve_api))
