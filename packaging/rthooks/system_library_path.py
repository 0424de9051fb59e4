"""PyInstaller runtime hook: runs first in every process of the bundle.

The bootloader points LD_LIBRARY_PATH at the bundle's own libraries (and keeps any
previous value in LD_LIBRARY_PATH_ORIG). This process has loaded its libraries
already, so the variable now only matters to the programs it starts: the scripts
Scriptbox runs (bash, node, whatever they call) must get the system's libraries,
not the bundle's copies of libssl, libstdc++ and the like. The bundle's own
children (`serve`, `scriptbox-db`) go through the bootloader again and get it back.

The desktop launcher keeps it: Qt starts QtWebEngineProcess from the bundle, and
that helper needs the bundle's libraries.
"""

import os
import sys


def _restore_system_library_path() -> None:
    if sys.argv[1:2] == ["desktop"]:
        return
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = original


_restore_system_library_path()
