"""Factor ``placebo``: an A/A factor that changes nothing but the run's chaotic trajectory.

Levels ``a`` (the default and reference), ``b``, ``c``, ... ``h``. A level only moves the
training loader onto another stream of its pseudo-random generator: level ``a`` draws epoch
``e``'s shuffle and augmentation from ``SeedSequence([seed, e])`` (exactly what a run without the
factor draws), level ``k`` (0-based index ``k > 0``) from ``SeedSequence([seed, e, k])``. The
initial weights (seeded by the run seed alone), the model, the data, its splits, the optimizer
and every hyperparameter stay the same.

Why this mechanism: every stream gives a uniformly random order and identically distributed
augmentation draws, so the distribution of any run outcome is *identical* under every level
and the true effect of the factor is exactly zero — unlike a tiny learning-rate perturbation,
whose true effect is merely small. What it does change, the order of the mini-batches, is what
makes two runs of one seed diverge in a chaotic training process: paired over seeds, a placebo
contrast measures the false-positive rate of the report's tests in the user's own setting. Its
label is its letter; it never enters another factor's label, and a study that does not vary it
stores what it stored before (level ``a`` is the old stream).
"""

from __future__ import annotations

import dataclasses
import string
from typing import ClassVar

from tricks._registry import Level

DEFAULT = "a"

__all__ = ["DEFAULT", "LEVELS", "Placebo"]


@dataclasses.dataclass(frozen=True)
class Placebo(Level):
    factor: ClassVar[str] = "placebo"
    #: Extra entropy word of the training loader's generator; 0: the run seed's own stream.
    stream: ClassVar[int] = 0


def _level(index: int) -> type[Placebo]:
    letter = string.ascii_lowercase[index]
    summary = ("reference stream of the data order (what a run without placebo draws)"
               if index == 0 else f"data-order stream {index}: another shuffle and "
               f"augmentation draw, nothing else")
    cls = type(f"Placebo{letter.upper()}", (Placebo,),
               {"name": letter, "stream": index, "summary": summary, "__module__": __name__,
                "__qualname__": f"Placebo{letter.upper()}", "__annotations__": {}})
    return dataclasses.dataclass(frozen=True)(cls)


LEVELS: dict[str, type[Placebo]] = {cls.name: cls for cls in map(_level, range(8))}
# Module attributes, so that levels pickle (worker processes, checkpoints) by qualified name.
globals().update({cls.__name__: cls for cls in LEVELS.values()})
