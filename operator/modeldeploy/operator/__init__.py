"""The modeldeploy control plane: the ModelDeployment resource and its rollouts."""
