"""Stage progress for the main job: which stage runs, how long each took, notes as they come."""

from __future__ import annotations

import contextlib
import logging
import time

log = logging.getLogger("servebench.run")


class StageProgress:
    def __init__(self, stages: list[str]):
        self.stages = stages
        self.current = "start-up"

    @contextlib.contextmanager
    def stage(self, name: str, timings: dict[str, float]):
        self.current = name
        index = self.stages.index(name) + 1
        log.info("[stage %d/%d] %s ...", index, len(self.stages), name)
        began = time.perf_counter()
        try:
            yield
        finally:
            timings[name] = round(time.perf_counter() - began, 2)
        log.info("[stage %d/%d] %s done in %.1f s", index, len(self.stages), name, timings[name])

    def note(self, text: str) -> None:
        log.info("%s: %s", self.current, text)
