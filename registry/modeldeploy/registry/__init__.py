"""The MLflow side: checkpoints, publishing, fetching, watching and decision records."""
