"""What the coordinator does while workers work: :meth:`StudyLoop.step`, about twice a second."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

from harness.store import control
from harness.study.grid_trials import record_grid_trials
from harness.study.spec import StudySpec
from harness.study.trials import _Search

__all__ = ["KEEP_ALIVE_S", "StudyLoop"]

#: Seconds a search's keep-alive reaches ahead; renewed at every step while it asks for trials.
KEEP_ALIVE_S = 30.0


class StudyLoop:
    """What the coordinator does while workers work; :meth:`step` is called about twice a
    second by the launcher. A failing poll or record never stops the study; :meth:`final`
    (once the workers ended) raises."""

    def __init__(self, display: Any, engine: Any, spec: StudySpec, study_id: int, url: str,
                 search: _Search | None) -> None:
        self.display, self.engine, self.spec = display, engine, spec
        self.study_id, self.url, self.search = study_id, url, search
        self.stopping = False
        self.searching = search is not None
        #: Extra work per step, ``hook(loop)``: e.g. a rule that enqueues more seeds.
        self.hooks: list[Callable[[StudyLoop], None]] = []
        self._last_record = 0.0
        self._warned = ""

    def step(self) -> None:
        with contextlib.suppress(Exception):
            self.display.poll()
        if self.search is None and time.perf_counter() - self._last_record > 2.0:
            self._last_record = time.perf_counter()
            try:
                record_grid_trials(self.engine, self.spec, self.study_id, self.url)
            except Exception as exc:  # noqa: BLE001 - the study goes on; final() raises
                # Said once per distinct error, never hidden: the next step tries again.
                text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if text != self._warned:
                    self._warned = text
                    print(f"bsnn-bench: warning: recording Optuna trials failed (will "
                          f"retry): {text}", file=sys.stderr)
        if self.searching:
            done = self.stopping or self.search.step()  # type: ignore[union-attr]
            self.searching = not done
            control.set_keep_alive(self.engine, self.study_id,
                                   KEEP_ALIVE_S if self.searching else None)
        for hook in self.hooks:
            hook(self)

    def final(self) -> None:
        if self.search is not None:
            self.search.step()
            control.set_keep_alive(self.engine, self.study_id, None)
        else:
            record_grid_trials(self.engine, self.spec, self.study_id, self.url)
        self.display.poll(force=True)
