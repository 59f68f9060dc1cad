"""Local mode: the operator's state machine on one machine, with real serving processes.

``modeldeploy local apply -f FILE`` reads the same ModelDeployment YAML as the cluster
operator, keeps the status in a JSON file in a state directory, and serves through
``modeldeploy.operator.local.platform`` (predictor processes plus the router).
"""
