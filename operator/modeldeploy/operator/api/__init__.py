"""The ModelDeployment resource: typed spec and status, the CRD schema, conditions."""
