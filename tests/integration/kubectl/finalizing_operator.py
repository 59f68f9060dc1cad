"""What ``kopf run`` loads in the kubectl tests: a delete handler, so kopf keeps its finalizer.

kopf adds its finalizer to each ModelDeployment and, once the handler has run on deletion,
removes it with a JSON patch (``test`` of the resourceVersion, then ``remove``).
"""

import os

import kopf


@kopf.on.login()
def login(**_: object) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=os.environ["MODELDEPLOY_TEST_KUBE_URL"], insecure=True)


@kopf.on.delete("modeldeploy.io", "v1alpha1", "modeldeployments")
def deleted(name: str, **_: object) -> None:
    """Nothing to clean up: the handler exists so that kopf holds the object until it ran."""
