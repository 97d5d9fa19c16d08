"""The chaos harness's fault kinds (cheap to import: the command line lists them)."""

from __future__ import annotations

PROCESS_FAULTS = ("redis", "rabbitmq", "mariadb", "service", "consumer")
LINK_FAULTS = ("partition", "slow-broker", "slow-mysql")
DISK_FAULTS = ("disk-full",)  # the broker's data directory (a small tmpfs: needs root)
FAULTS = PROCESS_FAULTS + LINK_FAULTS + DISK_FAULTS
SABOTAGE = ("delete-row", "drop-message", "stale-content")
