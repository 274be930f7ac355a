"""WSGI entry for the HTTP APIs that up.sh runs under uWSGI.

uWSGI is started with --env YS_WSGI_SERVICE=<name> and, per service, the
variables that service reads its configuration location from:

  keystone    OS_KEYSTONE_CONFIG_FILES
  placement   OS_PLACEMENT_CONFIG_DIR
  nova-api    OS_NOVA_CONFIG_DIR + OS_NOVA_CONFIG_FILES (paste file first)
  cinder-api  YS_WSGI_CONFIG_FILES ("a.conf;b.conf"), passed as --config-file

(Neutron is not here: see neutron_api.py for why it runs on eventlet instead.)
"""
import os
import sys


def _argv_from_env(prog):
    files = [f for f in os.environ.get("YS_WSGI_CONFIG_FILES", "").split(";") if f]
    argv = [prog]
    for f in files:
        argv += ["--config-file", f]
    sys.argv = argv


def _build(service):
    if service == "keystone":
        from keystone.server.wsgi import initialize_public_application
        return initialize_public_application()
    if service == "placement":
        from placement.wsgi import init_application
        return init_application()
    if service == "nova-api":
        from nova.api.openstack.compute.wsgi import init_application
        return init_application()
    if service == "cinder-api":
        _argv_from_env("cinder-api")
        from cinder.wsgi.wsgi import initialize_application
        return initialize_application()
    raise RuntimeError("unknown YS_WSGI_SERVICE %r" % service)


application = _build(os.environ.get("YS_WSGI_SERVICE", ""))
