"""Queue and task names in one place."""

QUEUE_PREFIX = "hookyard."
MAINTENANCE_QUEUE = "hookyard.maintenance"

PROCESS_TASK = "hookyard.events.process"  # args: [event ids], all of one vendor
PROCESS_BATCH_MAX = 10  # ids per message: fewer broker round trips, still spread over the workers
RELAY_TASK = "hookyard.maintenance.relay"
RETENTION_TASK = "hookyard.maintenance.retention"


def vendor_queue(vendor: str) -> str:
    return f"{QUEUE_PREFIX}{vendor}"
