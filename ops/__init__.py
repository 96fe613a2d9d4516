"""Operator surfaces: the `hookyard` CLI, the /v1 API, the web app that serves them beside the ingress."""
