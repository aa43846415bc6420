"""The glue a user would otherwise script: `mosquitto_sub -F '%t %x'` piped into a librdkafka
producer (confluent-kafka), forwarding raw sensor frames to Kafka with the same producer
settings the agent uses (idempotent, acks=all, lz4), no analytics.

    mosquitto_sub ... -F '%t %x' | python glue.py BOOTSTRAP TOPIC PROGRESS_FILE

Every second it writes "<acknowledged messages> <acknowledged bytes>" to PROGRESS_FILE.
"""

import sys
import time

from confluent_kafka import Producer


def main() -> None:
    bootstrap, topic, progress = sys.argv[1:4]
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 50,
        }
    )
    acked = [0, 0]

    def delivered(err, msg):
        if err is None:
            acked[0] += 1
            acked[1] += len(msg.value())

    last = time.monotonic()
    for line in sys.stdin:
        mqtt_topic, _, payload = line.rstrip("\n").partition(" ")
        value = bytes.fromhex(payload)
        while True:
            try:
                producer.produce(topic, value, key=mqtt_topic, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        now = time.monotonic()
        if now - last >= 1.0:
            last = now
            with open(progress, "w", encoding="ascii") as f:
                f.write(f"{acked[0]} {acked[1]}\n")
    producer.flush(30)


if __name__ == "__main__":
    main()
