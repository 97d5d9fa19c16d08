"""The chaos harness's fault kinds (cheap to import: the command line lists them)."""

from __future__ import annotations

# SIGKILL and restart. "rabbitmq" is the RabbitMQ node; on RocketMQ (--broker rocketmq)
# "rocketmq" is the proxy's JVM (the broker runs inside it) and "namesrv" the name server.
PROCESS_FAULTS = ("redis", "rabbitmq", "rocketmq", "namesrv", "mariadb", "service", "consumer")
LINK_FAULTS = ("partition", "slow-broker", "slow-mysql")
DISK_FAULTS = ("disk-full",)  # the broker's data directory (a small tmpfs: needs root)
FAULTS = PROCESS_FAULTS + LINK_FAULTS + DISK_FAULTS
BROKERS = ("rabbitmq", "rocketmq")
# What only one broker has.
_ONLY = {"rabbitmq": ("rabbitmq", "disk-full"), "rocketmq": ("rocketmq", "namesrv")}
SABOTAGE = ("delete-row", "drop-message", "stale-content")


def faults_for(broker: str) -> tuple[str, ...]:
    """Every fault kind a run on ``broker`` can inject (the default: all of them, in turn)."""
    other = [f for b, only in _ONLY.items() if b != broker for f in only]
    return tuple(f for f in FAULTS if f not in other)
