"""The Kafka backend of the log: ``kafka://host:port[,host:port...]``, through librdkafka.

One concept per module, in the order a record travels:

- `config`: librdkafka settings for every client, and redaction of secrets;
- `errors`: librdkafka's errors as loopline's;
- `admin`: topics (create, describe, list, delete) and offsets by position or time;
- `group_offsets`: a group's committed offsets, read without joining it;
- `deadline`: the log's timeout around librdkafka calls that can wait past it;
- `producer`: `KafkaProducer`, idempotent, murmur2-partitioned, transactional;
- `messages`: librdkafka messages into `Record`s (the consumer's hot path);
- `offsets`: where a consumer starts: committed offsets, or the reset end;
- `membership`: how a consumer gets its partitions, with or without a group;
- `progress`: a consumer's positions and the records it holds back;
- `consumer`: `KafkaConsumer`;
- `log`: `KafkaLog`, which ties them together.
"""

from __future__ import annotations

from loopline.log.kafka.config import redacted
from loopline.log.kafka.consumer import KafkaConsumer
from loopline.log.kafka.log import KafkaLog
from loopline.log.kafka.producer import KafkaProducer

__all__ = ["KafkaConsumer", "KafkaLog", "KafkaProducer", "redacted"]
