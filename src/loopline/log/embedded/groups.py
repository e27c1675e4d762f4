"""Consumer groups on the embedded log: committed offsets and the one live member.

The embedded log is for one machine, so a group has at most one live member,
which reads every partition. A second member is refused with an error that
names Kafka as the way to spread a group over many processes. A member whose
process died (``kill -9``) is recognised as gone at once, by its pid and the
process start time, so a restarted process takes over without waiting.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping

from loopline.log.embedded.store import Store
from loopline.log.errors import GroupMemberConflict
from loopline.log.records import TopicPartition


def _process_started(pid: int) -> str:
    """A token that changes if `pid` is reused by another process ('' if it is not running)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat.rsplit(b")", 1)[1].split()[19].decode()  # field 22: start time
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""
        except PermissionError:
            return "?"
        return "?"


def join(store: Store, group: str) -> str:
    """Become the live member of `group`; return the member id."""
    member = uuid.uuid4().hex
    pid = os.getpid()
    with store.write() as db:
        row = db.execute(
            "SELECT member_id, pid, started FROM group_members WHERE group_name = ?", (group,)
        ).fetchone()
        if row is not None:
            _, other_pid, started = row
            if started and _process_started(other_pid) == started:
                where = "this process" if other_pid == pid else f"process {other_pid}"
                raise GroupMemberConflict(
                    f"consumer group {group!r} already has a live member ({where}); the embedded "
                    "log allows one member per group. Close that consumer first, use another "
                    "group, or run on Kafka (--log kafka://host:port) to spread a group over "
                    "many consumers"
                )
        db.execute(
            "INSERT OR REPLACE INTO group_members (group_name, member_id, pid, started) "
            "VALUES (?, ?, ?, ?)",
            (group, member, pid, _process_started(pid)),
        )
    return member


def leave(store: Store, group: str, member: str) -> None:
    with store.write() as db:
        db.execute(
            "DELETE FROM group_members WHERE group_name = ? AND member_id = ?", (group, member)
        )


def is_member(store: Store, group: str, member: str) -> bool:
    with store.lock:
        row = store.db.execute(
            "SELECT member_id FROM group_members WHERE group_name = ?", (group,)
        ).fetchone()
    return row is not None and row[0] == member


def commit(store: Store, group: str, member: str, offsets: Mapping[TopicPartition, int]) -> None:
    with store.write() as db:
        row = db.execute(
            "SELECT member_id FROM group_members WHERE group_name = ?", (group,)
        ).fetchone()
        if row is None or row[0] != member:
            raise GroupMemberConflict(
                f"this consumer is no longer the member of group {group!r} (another consumer "
                "took the group over); its offsets were not committed"
            )
        db.executemany(
            "INSERT OR REPLACE INTO group_offsets (group_name, topic, partition, offset) "
            "VALUES (?, ?, ?, ?)",
            [(group, tp.topic, tp.partition, off) for tp, off in offsets.items()],
        )


def offsets_of(store: Store, group: str) -> dict[TopicPartition, int]:
    """Every offset `group` committed (a read: it does not join the group)."""
    with store.lock:
        rows = store.db.execute(
            "SELECT topic, partition, offset FROM group_offsets WHERE group_name = ? "
            "ORDER BY topic, partition",
            (group,),
        ).fetchall()
    return {TopicPartition(t, p): o for t, p, o in rows}


def committed(
    store: Store, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    with store.lock:
        rows = store.db.execute(
            "SELECT topic, partition, offset FROM group_offsets WHERE group_name = ?", (group,)
        ).fetchall()
    stored = {TopicPartition(t, p): o for t, p, o in rows}
    return {tp: stored.get(tp) for tp in partitions}
