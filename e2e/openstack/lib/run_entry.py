#!/usr/bin/python3
"""Run an installed console script by name: `run_entry.py NAME ARGS...`.

Debian's python3-* library packages carry the OpenStack entry points
(nova-conductor, keystone-manage, ...) in their metadata but not the
/usr/bin wrappers, which live in the service packages we avoid.
"""
import sys
from importlib import metadata


def find(name):
    for group in ("console_scripts", "wsgi_scripts"):
        for ep in metadata.entry_points(group=group):
            if ep.name == name:
                return ep
    return None


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: run_entry.py NAME [ARGS...]")
    ep = find(sys.argv[1])
    if ep is None:
        sys.exit("no installed entry point called %r" % sys.argv[1])
    sys.argv = sys.argv[1:]
    sys.exit(ep.load()())


if __name__ == "__main__":
    main()
