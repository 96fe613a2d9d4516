"""Celery workers: process stored events, relay unpublished ones, run scheduled jobs."""
