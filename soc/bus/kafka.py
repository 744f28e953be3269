"""The Kafka bus (aiokafka): the same contract as the in-process bus, across processes.

Producers write keyed records with acks=all and idempotence, so a record acknowledged is on every
in-sync replica and a retried send is not written twice. Each stage is a consumer group with
manual commits: the stage commits only after what it produced was acknowledged downstream, so a
crash replays the batch (deterministic ids absorb the replay). Memory stays bounded: the producer
waits when its buffer is full, and a poll takes at most `max_records`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
)

from soc import metrics
from soc.bus.base import Delivered, Message, UndecodableRecord

log = logging.getLogger(__name__)

#: How long `subscribe` waits for the group to hand the new member its partitions.
_JOIN_TIMEOUT = 60.0
#: What `subscribe` allows the client's own start (bootstrap, coordinator) on top of the join.
_START_SLACK = 30.0
#: How long giving up on a member may take (leaving its group) before it is dropped regardless.
_ABANDON_TIMEOUT = 30.0
#: Producer errors after which only a new producer (a new producer id) can publish again.
_PRODUCER_STATE_LOST = (OutOfOrderSequenceNumber, InvalidProducerEpoch)
#: How long a producer replaced after a failure may take to stop.
_STOP_SECONDS = 10.0


class _Replaced(Exception):
    """The producer a publish was waiting on was replaced: resend on the new one."""


#: Keys whose partition is remembered per topic (then forgotten all at once).
_KEYS_PLACED = 65536


def murmur2(data: bytes) -> int:
    """Kafka's key hash (`org.apache.kafka.common.utils.Utils.murmur2`, as aiokafka's and the
    Java producer's default partitioners place keys), reading the input a 32-bit word at a time:
    about 3x faster than aiokafka's byte-by-byte version. Alerts and matches are keyed by their
    grouping, which takes many values: placing their keys was 1.4% of a detecting process."""
    length = len(data)
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = 0x9747B28C ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data) if words else ():
        k = (k * m) & mask
        k = ((k ^ (k >> 24)) * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length & 3
    if tail:
        rest = length & ~3
        if tail == 3:
            h ^= data[rest + 2] << 16
        if tail >= 2:
            h ^= data[rest + 1] << 8
        h = ((h ^ data[rest]) * m) & mask
    h = ((h ^ (h >> 13)) * m) & mask
    return h ^ (h >> 15)


class KafkaBus:
    carries_bytes = True

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 4,
        replication: int = 1,
        namespace: str = "",
        client_id: str = "soc",
    ) -> None:
        """`namespace` prefixes every topic and group, so several platforms (or test runs)
        can share one cluster without reading each other's records."""
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._replication = replication
        self._namespace = namespace
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        #: Set when the current producer is replaced: publishers still waiting on it resend.
        self._replaced = asyncio.Event()
        self._restart_lock = asyncio.Lock()
        self._known_topics: set[str] = set()
        self._topic_lock = asyncio.Lock()
        self._consumers: list[KafkaConsumer] = []
        #: Per topic: its partitions and the partition of each key seen (see `_publish_once`).
        self._placements: dict[str, tuple[list[int], dict[str, int]]] = {}

    def _name(self, topic: str) -> str:
        return f"{self._namespace}{topic}"

    async def start(self) -> None:
        self._producer = self._new_producer()
        await self._producer.start()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            # Zstandard (level 3, cramjam): on the engine's event batches 910 MB/s at a ratio of
            # 34, where gzip gave 60 MB/s (a tenth of the engine's time, py-spy) and LZ4 (level 9
            # in aiokafka) 146 MB/s at 6.9. bench/kafka_codecs.py measures them again.
            compression_type="zstd",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            key_serializer=lambda key: key.encode("utf-8", "surrogatepass"),
            # Values are encoded in `_publish_once` (see `Message.encoded`).
        )

    async def _restart_producer(self, failed: AIOKafkaProducer | None) -> None:
        """Replace the producer that failed, once, however many publishers met the failure
        (stages of one process publish at the same time): each resends on its successor, which
        is in place only once started. Publishers still waiting on the failed one stop waiting
        and resend; it is then stopped, for a bounded time (its batches may never flush)."""
        async with self._restart_lock:
            if self._producer is not failed:
                return  # replaced already, by a publisher that met the same failure
            replacement = self._new_producer()
            await replacement.start()
            self._producer = replacement
            replaced, self._replaced = self._replaced, asyncio.Event()
            replaced.set()
        if failed is not None:
            try:
                await asyncio.wait_for(failed.stop(), _STOP_SECONDS)
            except (KafkaError, TimeoutError) as exc:
                log.warning("kafka producer did not stop cleanly error=%r", exc)

    async def ensure_topic(self, topic: str) -> None:
        """Create the topic with the configured partitions if it does not exist yet."""
        name = self._name(topic)
        if name in self._known_topics:
            return
        async with self._topic_lock:
            if name in self._known_topics:
                return
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
            try:
                await admin.start()
                await admin.create_topics([NewTopic(name, self._partitions, self._replication)])
            except TopicAlreadyExistsError:
                pass
            finally:
                await admin.close()  # also when it never started: nothing left connecting
            self._known_topics.add(name)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        """Returns once every message is acknowledged by all in-sync replicas. While the
        cluster is unreachable it keeps retrying (the idempotent producer makes a resend safe),
        so a collector holds its senders instead of dropping their lines."""
        if not messages:
            return
        delay = 0.5
        while True:
            producer = self._producer
            try:
                await self._publish_once(topic, messages)
                return
            except _Replaced:
                continue  # another publisher replaced the producer: resend on the new one
            except _PRODUCER_STATE_LOST as exc:
                # A broker restart can leave the idempotent producer's sequence numbers out of
                # step with the broker's: that producer never recovers, a new one starts fresh.
                # Resending is safe: records carry deterministic ids, stored once downstream.
                log.warning(
                    "kafka producer state lost, restarting the producer topic=%s error=%s",
                    topic, exc,
                )  # fmt: skip
                await self._restart_producer(producer)
            except KafkaError as exc:
                if self._producer is not producer:
                    continue  # replaced meanwhile (its closing refused the send): resend
                if not getattr(exc, "retriable", True) and not isinstance(exc, KafkaTimeoutError):
                    raise
                log.warning(
                    "kafka unavailable, retrying topic=%s records=%d delay_s=%.1f error=%s",
                    topic, len(messages), delay, exc,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _publish_once(self, topic: str, messages: Sequence[Message]) -> None:
        if self._producer is None:
            raise RuntimeError("publish before start")
        await self.ensure_topic(topic)
        name = self._name(topic)
        producer, replaced_event = self._producer, self._replaced
        # One batch per partition rather than one send per record: a record's send costs a
        # future and its callback, which took an eighth of the engine's time (py-spy, issue 4).
        # Records go to the partition the producer's own partitioner gives their key, so
        # per-key order and placement are as with `send`.
        partitions = sorted(await producer.partitions_for(name))
        placed = self._placements.get(name)
        if placed is None or placed[0] != partitions:
            placed = self._placements[name] = (partitions, {})
        # A key's partition depends on the key and the partitions alone, and a stream has few
        # keys (its hosts): the partitioner's pure-Python murmur2 runs once per key, not once
        # per record (2% of the engine's time).
        known = placed[1]
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            partition = known.get(message.key)
            if partition is None:
                if len(known) >= _KEYS_PLACED:
                    known.clear()
                encoded = message.key.encode("utf-8", "surrogatepass")
                partition = known[message.key] = partitions[
                    (murmur2(encoded) & 0x7FFFFFFF) % len(partitions)
                ]
            by_partition.setdefault(partition, []).append(message)
        pending: list[asyncio.Future[Any]] = []
        for partition, records in by_partition.items():
            batch = producer.create_batch()
            for message in records:
                key, value = message.key, message.as_bytes()
                headers = list(message.headers)  # aiokafka's record builder takes a list only
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is not None:
                    continue
                if batch.record_count():
                    pending.append(await producer.send_batch(batch, name, partition=partition))
                    batch = producer.create_batch()
                    appended = batch.append(key=key, value=value, timestamp=None, headers=headers)
                    if appended is not None:
                        continue
                # Larger than a whole batch: `send` gives it one of its own (or refuses it).
                pending.append(
                    await producer.send(
                        name, value=value, key=key, partition=partition, headers=headers
                    )
                )
            if batch.record_count():
                pending.append(await producer.send_batch(batch, name, partition=partition))
        sent = asyncio.gather(*pending)
        replaced = asyncio.ensure_future(replaced_event.wait())
        try:
            await asyncio.wait((sent, replaced), return_when=asyncio.FIRST_COMPLETED)
        finally:
            replaced.cancel()
        if not sent.done():
            sent.cancel()
            raise _Replaced
        sent.result()

    async def subscribe(self, topic: str, group: str) -> KafkaConsumer:
        await self.ensure_topic(topic)
        consumer = KafkaConsumer(
            AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                group_id=self._name(group),
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=10_000,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                # Values are decoded in `poll` (see `Delivered`).
                key_deserializer=lambda key: key.decode("utf-8", "surrogatepass") if key else "",
            ),
            topic,
            group,
            self._name(topic),
        )
        try:
            # Bounded as a whole: aiokafka's own start waits for the group's coordinator
            # without a deadline, and a broker half back from a restart can keep it there.
            await asyncio.wait_for(consumer.start(), _JOIN_TIMEOUT + _START_SLACK)
        except BaseException:
            # A member that did not start must not stay: left running, it joins the group in
            # the background, is handed partitions and never polls them (the caller retries
            # with a new member, and records on those partitions would wait forever).
            await consumer.abandon()
            raise
        self._consumers.append(consumer)
        return consumer

    def lags(self) -> list[tuple[str, str, int, int]]:
        """(group, topic, partition, records not yet committed) for this process's consumers,
        from the high watermarks their fetches brought back: no extra request to the broker."""
        return [lag for consumer in self._consumers for lag in consumer.lags()]

    async def close(self) -> None:
        for consumer in self._consumers:
            await consumer.close()
        self._consumers.clear()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class _Revocation(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._owner.release(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


#: How long a rebalance waits for the batch in hand to be handled and committed before it goes
#: on without (the new owner then gets those records again; ids make that harmless).
_REVOKE_WAIT = 30.0


class KafkaConsumer:
    def __init__(
        self, consumer: AIOKafkaConsumer, topic: str, group: str = "", subscribe_as: str = ""
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._group = group
        #: Set while no polled batch awaits its commit: a rebalance waits for it.
        self._idle = asyncio.Event()
        self._idle.set()
        consumer.subscribe([subscribe_as or topic], listener=_Revocation(self))
        #: Offsets this member committed, per partition (for the lag gauge).
        self._committed: dict[TopicPartition, int] = {}
        #: Next offset per partition after the records returned by poll so far.
        self._positions: dict[TopicPartition, int] = {}
        self._closed = False

    async def start(self) -> None:
        await self._consumer.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _JOIN_TIMEOUT
        # Joining the group happens in the background; a member is only useful (and its lag
        # only meaningful) once it owns partitions.
        while not self._consumer.assignment():
            if loop.time() > deadline:
                raise TimeoutError(f"no partitions assigned for {self._topic} in {_JOIN_TIMEOUT}s")
            await asyncio.sleep(0.05)

    async def poll(self, max_records: int, max_wait: float) -> list[Delivered]:
        if self._closed:
            raise RuntimeError("poll on a closed consumer")
        try:
            batches = await self._consumer.getmany(
                timeout_ms=int(max_wait * 1000), max_records=max_records
            )
        except KafkaError as exc:
            # A broker restart or a rebalance in progress: nothing was returned, so nothing is
            # lost; the stage polls again.
            log.warning("kafka poll failed, retrying topic=%s error=%s", self._topic, exc)
            await asyncio.sleep(min(max_wait, 1.0))
            return []
        delivered: list[Delivered] = []
        topic = self._topic
        for partition, records in batches.items():
            number = partition.partition
            for record in records:
                item = Delivered(
                    topic, number, record.offset, record.key,
                    raw=record.value or b"", headers=record.headers,
                )  # fmt: skip
                if not record.headers:
                    # Not published with hints: decoded now, so that a record that is not the
                    # platform's is kept out of the stage (it could never be handled, and would
                    # hold up its partition for good), counted and named. With hints (the
                    # platform's own), decoded when and if the stage uses the value.
                    try:
                        item.value  # noqa: B018
                    except UndecodableRecord as exc:
                        metrics.DROPPED.labels(self._group, "undecodable").inc()
                        log.error("record skipped, %s", exc)
                        continue
                    item.raw = None  # decoded: the value alone is kept, as before
                delivered.append(item)
            if records:
                self._positions[partition] = records[-1].offset + 1
                # The first record after an assignment sits at the group's committed offset:
                # the lag gauge's base until this member commits.
                self._committed.setdefault(partition, records[0].offset)
        if delivered:
            self._idle.clear()
        return delivered

    async def commit(self) -> None:
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in self._positions.items() if tp in assigned}
        await self._commit(offsets)
        self._positions = {tp: o for tp, o in self._positions.items() if tp not in offsets}
        self._idle.set()

    async def commit_upto(self, positions: Mapping[int, int]) -> None:
        by_number = {tp.partition: tp for tp in self._consumer.assignment()}
        offsets = {}
        for number, position in positions.items():
            tp = by_number.get(number)
            if tp is None:
                continue  # moved away: its next owner reads from the group's committed offset
            upto = min(position, self._positions.get(tp, position))
            if upto > self._committed.get(tp, -1):
                offsets[tp] = upto
        await self._commit(offsets)
        self._idle.set()

    async def _commit(self, offsets: Mapping[Any, int]) -> None:
        if not offsets:
            return
        try:
            await self._consumer.commit(dict(offsets))
            self._committed.update(offsets)
        except KafkaError as exc:
            # The partitions moved (or the broker is away): whoever owns them next gets these
            # records again, which deterministic ids make harmless.
            log.warning("kafka commit failed; records will be redelivered error=%s", exc)

    async def release(self, revoked: Any) -> None:
        """Partitions are being taken away (another member joined or left): let the batch in
        hand be handled and committed first, so that the next owner starts after it instead of
        handling it a second time."""
        if not self._idle.is_set():
            log.info("rebalance waits for the batch in hand topic=%s", self._topic)
            try:
                await asyncio.wait_for(self._idle.wait(), _REVOKE_WAIT)
            except TimeoutError:
                log.warning(
                    "rebalance went on before the batch in hand was committed; it will be"
                    " handled again by the next owner topic=%s",
                    self._topic,
                )
        gone = set(revoked)
        self._positions = {tp: o for tp, o in self._positions.items() if tp not in gone}

    def lags(self) -> list[tuple[str, str, int, int]]:
        if self._closed:
            return []
        assigned = self._consumer.assignment()
        # A partition that moved away is forgotten: if it comes back, its base is learnt anew.
        self._committed = {tp: o for tp, o in self._committed.items() if tp in assigned}
        found = []
        for partition in assigned:
            end = self._consumer.highwater(partition)
            base = self._committed.get(partition, self._positions.get(partition))
            if end is not None and base is not None:
                found.append((self._group, self._topic, partition.partition, max(end - base, 0)))
        return found

    async def lag(self) -> int:
        assigned = list(self._consumer.assignment())
        if not assigned:
            return 0
        ends: dict[Any, int] = await self._consumer.end_offsets(assigned)
        starts: dict[Any, int] = await self._consumer.beginning_offsets(assigned)
        total = 0
        for partition in assigned:
            committed = await self._consumer.committed(partition)
            base = committed if committed is not None else starts.get(partition, 0)
            total += max(ends.get(partition, 0) - base, 0)
        return total

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Nothing more will be committed by this member: its leaving the group must not wait
        # for a batch in hand (the next owner takes it over; ids make that harmless).
        self._idle.set()
        await self._consumer.stop()

    async def abandon(self) -> None:
        """Stop a member that never started (or whose start is given up), within a bound; a
        failure to stop cleanly is logged, never raised over the reason it is abandoned."""
        try:
            await asyncio.wait_for(self.close(), _ABANDON_TIMEOUT)
        except Exception as exc:  # TimeoutError or the client's own: it goes regardless
            log.warning("kafka consumer abandoned uncleanly topic=%s error=%r", self._topic, exc)
