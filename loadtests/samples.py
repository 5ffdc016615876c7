"""Raw per-request times collected from Locust's ``request`` event.

The users put ``scheduled_ns``, ``sent_ns`` and ``end_ns`` (``time.perf_counter_ns()``) and an
``error_kind`` (None on success) into each event's context; ``SampleCollector`` keeps them.
``scheduled_ns`` equals ``sent_ns`` in a closed loop; in an open loop it is the arrival time the
Poisson schedule gave, and latency is counted from it.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

CONTEXT_KEYS = ("scheduled_ns", "sent_ns", "end_ns")


@dataclasses.dataclass(frozen=True)
class Samples:
    scheduled_ns: np.ndarray  # int64
    sent_ns: np.ndarray
    end_ns: np.ndarray
    error_kind: np.ndarray  # object: None for a success, else the failure kind

    def __len__(self) -> int:
        return int(self.end_ns.size)

    @property
    def ok(self) -> np.ndarray:
        return np.array([kind is None for kind in self.error_kind], dtype=bool)

    @property
    def latency_ns(self) -> np.ndarray:
        """From the scheduled send time to the end of the response."""
        return self.end_ns - self.scheduled_ns

    def select(self, mask: np.ndarray) -> Samples:
        return Samples(
            self.scheduled_ns[mask], self.sent_ns[mask], self.end_ns[mask], self.error_kind[mask]
        )

    def errors_by_kind(self) -> dict[str, int]:
        return dict(collections.Counter(k for k in self.error_kind if k is not None))


class SampleCollector:
    """Listens on ``events.request`` and keeps the raw times of every request it sees."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, int, int, str | None]] = []
        self.user_errors: collections.Counter[str] = collections.Counter()

    def attach(self, events) -> SampleCollector:
        events.request.add_listener(self.on_request)
        events.user_error.add_listener(self.on_user_error)
        return self

    def clear(self) -> None:
        self._rows.clear()
        self.user_errors.clear()

    def on_request(self, context=None, **_kwargs) -> None:
        """The ``events.request`` listener; requests without our raw times are not ours."""
        if context and "end_ns" in context:
            self._rows.append(
                (
                    context["scheduled_ns"],
                    context["sent_ns"],
                    context["end_ns"],
                    context.get("error_kind"),
                )
            )

    def on_user_error(self, exception=None, **_kwargs) -> None:
        """An exception escaped a task: a bug or an unexpected failure, counted, never hidden."""
        self.user_errors[f"user_error:{type(exception).__name__}"] += 1

    def samples(self) -> Samples:
        rows = self._rows
        kinds = np.empty(len(rows), dtype=object)
        kinds[:] = [r[3] for r in rows]
        return Samples(
            scheduled_ns=np.array([r[0] for r in rows], dtype=np.int64),
            sent_ns=np.array([r[1] for r in rows], dtype=np.int64),
            end_ns=np.array([r[2] for r in rows], dtype=np.int64),
            error_kind=kinds,
        )
