"""Entry point of the bundle's second program, ``scriptbox-db``: SecantusDB's server,
started through scriptbox/dblaunch.py (credential on stdin, then ``--auth``).

The embedded database is a program of its own in the bundle (see packaging/scriptbox.spec and
docs/desktop.md, "Licences"): SecantusDB is GPL-2.0-only and PyQt6 GPL-3.0-only, two licences
that cannot govern one program, so they are never built into the same executable.
"""

import sys

from scriptbox.dblaunch import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
