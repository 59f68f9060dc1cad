"""What ``kopf run`` loads in the kopf tests: the real handlers, and a login to the emulator.

Each run gets a fresh kopf registry, so the handler modules are (re)executed into it.
"""

import importlib
import os
import sys

import kopf

for _name in ("modeldeploy.operator.handlers.lifecycle", "modeldeploy.operator.handlers.startup"):
    if _name in sys.modules:
        importlib.reload(sys.modules[_name])
    else:
        importlib.import_module(_name)


@kopf.on.login()
def login(**_: object) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=os.environ["MODELDEPLOY_TEST_KUBE_URL"], insecure=True)
