"""Reading the kube-apiserver's JSON audit log (scripts/audit-policy.yaml: Metadata level,
one ResponseComplete event per request, plus ResponseStarted for watches).

`Tail` remembers where the log ended when it was opened and later returns every event
written since, following the apiserver's size-based rotation (audit.log renamed to
audit-<time>.log): the open file handle keeps reading the renamed file, then the new
audit.log is read from its start.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime


def ts(s: str) -> float:
    """RFC 3339 with microseconds ("2025-11-24T04:33:00.123456Z") → Unix seconds."""
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


@dataclass
class Event:
    audit_id: str
    stage: str
    verb: str
    user: str
    user_agent: str
    namespace: str | None
    resource: str | None
    subresource: str | None
    name: str | None
    code: int | None
    received: float  # requestReceivedTimestamp
    done: float  # stageTimestamp
    uri: str

    @property
    def agent(self) -> str:
        """The user agent's product: kubectl-sts-safe, kubectl, sim-kubelet, kube-controller-manager…"""
        return self.user_agent.split("/", 1)[0]

    @property
    def kind(self) -> str:
        r = self.resource or "?"
        return f"{r}/{self.subresource}" if self.subresource else r


def parse(line: str) -> Event | None:
    try:
        e = json.loads(line)
    except ValueError:
        return None
    o = e.get("objectRef") or {}
    return Event(
        audit_id=e.get("auditID", ""),
        stage=e.get("stage", ""),
        verb=e.get("verb", ""),
        user=(e.get("user") or {}).get("username", ""),
        user_agent=e.get("userAgent", ""),
        namespace=o.get("namespace"),
        resource=o.get("resource"),
        subresource=o.get("subresource"),
        name=o.get("name"),
        code=(e.get("responseStatus") or {}).get("code"),
        received=ts(e["requestReceivedTimestamp"]),
        done=ts(e["stageTimestamp"]),
        uri=e.get("requestURI", ""),
    )


class Tail:
    def __init__(self, path: str):
        self.path = path
        self.f = open(path, "rb")
        self.f.seek(0, os.SEEK_END)
        self.ino = os.fstat(self.f.fileno()).st_ino
        self.rest = b""

    def read(self, needles: tuple[str, ...] = ()) -> list[Event]:
        """Events written since the last read (or since opening). With `needles`, only
        lines containing one of them are parsed (cheap pre-filter)."""
        data = self.rest + self.f.read()
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = self.ino
        if ino != self.ino:  # rotated: the rest of the old file was read above
            self.f.close()
            self.f = open(self.path, "rb")
            self.ino = ino
            if data and not data.endswith(b"\n"):
                data += b"\n"
            data += self.f.read()
        # A partly written last line waits for the next read.
        cut = data.rfind(b"\n") + 1
        data, self.rest = data[:cut], data[cut:]
        out = []
        for raw in data.splitlines():
            line = raw.decode("utf-8", "replace")
            if needles and not any(n in line for n in needles):
                continue
            ev = parse(line)
            if ev is not None:
                out.append(ev)
        return out

    def close(self):
        self.f.close()


def requests(events: list[Event]) -> list[Event]:
    """One event per request: the ResponseComplete (or Panic) stage, else the last seen."""
    by_id: dict[str, Event] = {}
    for e in events:
        prev = by_id.get(e.audit_id)
        if prev is None or e.stage in ("ResponseComplete", "Panic"):
            by_id[e.audit_id] = e
    return sorted(by_id.values(), key=lambda e: e.received)
