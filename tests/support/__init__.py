"""Helpers shared by the test suite: free ports, managed processes, a real MLflow server."""
