"""Evaluation across torchrun's ranks (`torchrun --nproc_per_node K -m bench.cli run|score ...`).

Clips are sharded round-robin: clip i goes to rank i % K. Ranks score one round at a time (round j holds
clips jK ... jK + K - 1); rank 0 gathers each round's per-clip results and hands them on in clip order
(``Ranks.map_ordered``), so what rank 0 builds from them (``FrameScorer`` states merged in clip order)
is what one process builds, and rank 0 holds one round of results at a time, not the whole run.

Rank 0 alone writes and prints. A step that fails on any rank fails on every rank: rank 0 raises the error
(the CLI prints its one line), the others raise ``RankStopped``, which the CLI ends quietly. Without
torchrun (world size 1) every step is a plain call.
"""
from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist

from bench.training.distributed import DistInfo, init_distributed

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class RankStopped(Exception):
    """Raised on a rank other than 0 when a shared step failed (there or on another rank): rank 0 reports it."""


def env_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun), before any process group exists."""
    return int(os.environ.get("RANK", 0)) if int(os.environ.get("WORLD_SIZE", 1)) > 1 else 0


def _portable(error: BaseException) -> BaseException:
    """The error itself when it pickles and comes back (BenchErrors do), else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # an exception whose arguments do not survive pickling
        return RuntimeError(f"{type(error).__name__}: {error}")


@dataclass
class Ranks:
    """This process's place among the ranks, and the few collective steps evaluation needs."""

    info: DistInfo = field(default_factory=DistInfo)

    @classmethod
    def join(cls, device: torch.device) -> "Ranks":
        """Join torchrun's process group (``bench.training.distributed``); world size 1 without torchrun."""
        return cls(init_distributed(device))

    @property
    def enabled(self) -> bool:
        return self.info.enabled

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def world(self) -> int:
        return self.info.world_size

    def record(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The manifest with the ranks that evaluated (only under torchrun: one process's manifest is unchanged)."""
        if self.enabled:
            manifest["ranks"] = {"world_size": self.world, "backend": str(dist.get_backend())}
        return manifest

    def owner(self, index: int) -> int:
        """The rank that scores item ``index`` of a ``map_ordered`` list."""
        return index % self.world

    def _settle(self, errors: Sequence[BaseException | None], own: BaseException | None) -> None:
        """Raise the first error in rank order: as itself on rank 0 (its own with its traceback), else RankStopped."""
        first = next((error for error in errors if error is not None), None)
        if first is None:
            return
        if not self.is_main:
            raise RankStopped(str(first))
        raise own if own is not None and errors[0] is not None else first

    def on_main(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on rank 0 only; its failure fails every rank. Other ranks get rank 0's value (it must pickle)."""
        return self._main_only(fn, True, *args, **kwargs)

    def only_main(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn`` on rank 0 only; its failure fails every rank. Other ranks get None."""
        return self._main_only(fn, False, *args, **kwargs)

    def _main_only(self, fn: Callable[..., T], share: bool, *args: Any, **kwargs: Any) -> T:
        if not self.enabled:
            return fn(*args, **kwargs)
        value, own = None, None
        if self.is_main:
            try:
                value = fn(*args, **kwargs)
            except Exception as error:
                own = error
        message = [(value if share else None, None if own is None else _portable(own))]
        dist.broadcast_object_list(message, src=0)
        self._settle([message[0][1]], own)
        return value if self.is_main else message[0][0]  # type: ignore[return-value]

    def together(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on every rank, each keeping its own value; a failure on any rank fails every rank. Collective
        steps inside ``fn`` (DDP training) must be the same on every rank."""
        if not self.enabled:
            return fn(*args, **kwargs)
        value, own = None, None
        try:
            value = fn(*args, **kwargs)
        except Exception as error:
            own = error
        errors: list[BaseException | None] = [None] * self.world
        dist.all_gather_object(errors, None if own is None else _portable(own))
        if own is not None and self.is_main:
            errors[0] = own
        self._settle(errors, own)
        return value  # type: ignore[return-value]

    def main_first(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn`` on rank 0, then on the others: for steps that fill a cache (the synthetic data) once."""
        if not self.enabled:
            return fn(*args, **kwargs)
        value = self._main_only(fn, False, *args, **kwargs)
        other = self.together(lambda: None if self.is_main else fn(*args, **kwargs))
        return value if self.is_main else other  # type: ignore[return-value]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def map_ordered(self, items: Sequence[T], work: Callable[[T], R]) -> Iterator[tuple[int, R]]:
        """(index, ``work(item)``) for every item, in order, on rank 0; each rank runs ``work`` on its own items.

        Other ranks get nothing but must run the iterator to its end (it holds the collective steps). Results
        are gathered one round (one item per rank) at a time; a failure on any rank fails every rank.
        """
        if not self.enabled:
            for index, item in enumerate(items):
                yield index, work(item)
            return
        for start in range(0, len(items), self.world):
            index = start + self.info.rank
            value, own = None, None
            if index < len(items):
                try:
                    value = work(items[index])
                except Exception as error:
                    own = error
            gathered: list[Any] | None = [None] * self.world if self.is_main else None
            dist.gather_object((value, None if own is None else _portable(own)), gathered, dst=0)
            verdict = [None]
            if self.is_main:
                errors = [error for _, error in gathered]
                verdict = [next((error for error in errors if error is not None), None)]
                if own is not None:
                    verdict = [_portable(own)]
            dist.broadcast_object_list(verdict, src=0)
            self._settle([verdict[0]], own if self.is_main else None)
            if self.is_main:
                for offset, (result, _) in enumerate(gathered[:len(items) - start]):
                    yield start + offset, result


def wait_for_main() -> None:
    """On a stopped rank other than 0: return once rank 0 has ended (its exit closes the group), so that
    rank 0's error line is out before torchrun reports the job."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        except Exception:  # rank 0 left the group: what we waited for
            log.debug("rank 0 has ended")


def close_group() -> None:
    """The end of a command under torchrun: every rank waits for the others (rank 0 writes last), then leaves
    the group, so that no rank tears its connections down while another still uses them."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def quiet_unless_main(command: Callable[[], int]) -> int:
    """A CLI command under torchrun: on ranks other than 0 only errors are logged, and an expected error (rank 0
    reports the same one) or a stopped step ends the rank without a word, once rank 0 has ended."""
    from bench.errors import EXPECTED_ERRORS

    if env_rank() == 0:
        code = command()
        close_group()
        return code
    logging.getLogger().setLevel(logging.ERROR)
    try:
        code = command()
    except (RankStopped, *EXPECTED_ERRORS):
        wait_for_main()
        return 2
    close_group()
    return code
