"""What both sources share: chunking, the mirror's keys, a bounded pool for per-owner requests."""

from concurrent.futures import ThreadPoolExecutor

from openim_sync.models import OnlineSession

from .http import RestError


def chunks(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def progress_chunks(engine, kind, items, size):
    """``chunks(items, size)``, telling the engine after each how far the kind has got (for
    the progress bar, and for ``resume``: the chunk's last item is done)."""
    from .engine import Read

    items = list(items)
    engine.expect(kind, len(items))
    for chunk in chunks(items, size):
        yield chunk
        engine.add(Read(kind, 0, [], progress=len(chunk), done_key=str(chunk[-1])))


def after(keys, marker):
    """``keys`` (sorted) past the resume ``marker``."""
    return [key for key in keys if marker is None or key > marker]


def ordered_map(fn, items, workers):
    """``fn(item)`` for each item on ``workers`` threads, yielded in order, at most a few
    ahead (the HTTP requests run in parallel; the caller writes to the database alone)."""
    items = list(items)
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openim-reconcile") as pool:
        window = workers * 4
        futures = [pool.submit(fn, item) for item in items[:window]]
        for index in range(len(items)):
            result = futures[index].result()
            futures[index] = None
            ahead = index + window
            if ahead < len(items):
                futures.append(pool.submit(fn, items[ahead]))
            yield result


def guarded(fn):
    """``fn`` for one owner or group, returning ``(key, result, error)``: a data error is
    returned for the caller to count, a configuration error raised."""

    def call(key):
        try:
            return key, fn(key), None
        except RestError as exc:
            if exc.kind == "config":
                raise
            return key, None, exc

    return call


def present_by(model, column, values, other):
    """``{value: {other value, ...}}`` of present rows, for keys ``values`` of ``column``."""
    result = {value: set() for value in values}
    for start in range(0, len(values), 500):
        rows = model.objects.present().filter(**{f"{column}__in": values[start : start + 500]})
        for a, b in rows.values_list(column, other):
            result[a].add(b)
    return result


def sessions_of(user_ids):
    result = {}
    for start in range(0, len(user_ids), 500):
        for row in OnlineSession.objects.filter(user_id__in=user_ids[start : start + 500]):
            result.setdefault(row.user_id, []).append(row)
    return result


def session_reads(kind, sent_ms, states, existing):
    """Reads that bring ``existing`` sessions to ``states`` (``{user: {platform: values}}``,
    online platforms only: the others are offline), as of ``sent_ms``.

    Sessions are versioned by the event's own time (Tencent ``EventTime``) or sequence (OpenIM
    ``seq``), which need not be on our clock, so the guard here is ``last_seen_at``, our
    receipt time of the newest callback: a session seen at or after the request was sent is
    left alone. The others are written at a version above the one they hold, so that the older
    callbacks of a replay lose against this read and newer ones (newer ``seq``) win.
    """
    from datetime import UTC, datetime

    from . import mapping

    sent_at = datetime.fromtimestamp(sent_ms / 1000, UTC)
    reads = []
    for user_id, platforms in states.items():
        rows = existing.get(user_id, [])
        by_platform = {}
        for row in rows:
            by_platform.setdefault(row.platform, []).append(row)
        for platform in sorted(set(platforms) | {r.platform for r in rows if r.online}):
            wanted = platforms.get(platform)
            online = wanted is not None
            values = dict(wanted or {})
            reason = values.pop("reason", "")
            current = by_platform.get(platform) or []
            if not current and online:
                change = mapping.session(
                    user_id, platform, online=True, seen_at=sent_at, reason=reason, **values
                )
                reads.append(_session_read(kind, sent_ms, change))
            for row in current:
                if row.last_seen_at is not None and row.last_seen_at >= sent_at:
                    continue
                if not online and not row.online:
                    continue
                change = mapping.session(
                    user_id,
                    platform,
                    online=online,
                    seen_at=sent_at,
                    conn_id=row.conn_id,
                    reason=reason,
                    **values,
                )
                reads.append(_session_read(kind, max(sent_ms, (row.version or 0) + 1), change))
    return reads


def _session_read(kind, version, change):
    from .engine import Read

    return Read(kind, version, [change])
