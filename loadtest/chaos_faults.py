"""The chaos harness's fault kinds (cheap to import: the command line lists them)."""

from __future__ import annotations

PROCESS_FAULTS = ("redis", "rabbitmq", "mariadb", "service", "consumer")
LINK_FAULTS = ("partition", "slow-broker", "slow-mysql")
FAULTS = PROCESS_FAULTS + LINK_FAULTS
SABOTAGE = ("delete-row", "drop-message", "stale-content")
