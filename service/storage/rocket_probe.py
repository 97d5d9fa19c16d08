"""``python -m service.storage.rocket_probe ENDPOINT TOPIC``: exit 0 once a message sent
through the RocketMQ proxy got its SendReceipt (readiness for scripts/rocketmq.sh; an open
port or a started client proves nothing: ``Producer.startup()`` succeeds against nothing)."""

from __future__ import annotations

import sys

from rocketmq import ClientConfiguration, Credentials, Message, Producer


def main(argv: list[str]) -> int:
    endpoint, topic = argv
    producer = Producer(ClientConfiguration(endpoint, Credentials(), request_timeout=3), [topic])
    producer.startup()
    try:
        message = Message()
        message.topic = topic
        message.body = b"probe"
        receipt = producer.send_async(message).result(timeout=10)
        print(f"rocketmq probe: message {receipt.message_id} stored, offset {receipt.offset}")
        return 0
    except Exception as exc:
        print(f"rocketmq probe: no receipt from {endpoint}: {exc}", file=sys.stderr)
        return 1
    finally:
        producer.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
