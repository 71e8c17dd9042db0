"""A drop-in for the original ``kinesisbatcher`` package's ``KinesisBatcher``.

Change ``from batcher import KinesisBatcher`` to
``from kinesis_batcher.compat import KinesisBatcher``: the same constructor arguments and
defaults, the same lists for the same valid input, planned by the Rust core. Where the
original was wrong, this is right (see the README, "Differences from the original"):
no empty batch; ``str`` counted in UTF-8 bytes; a record that can never fit, or that is
invalid, goes to ``on_refused`` (default: a ``warnings.warn``) instead of being printed
and dropped or raised halfway through; keys validated (1..256 characters).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Iterator, List, Optional

from ._native import Limits, Refusal, plan

__all__ = ["KinesisBatcher", "RefusedRecordWarning"]


class RefusedRecordWarning(UserWarning):
    """A record was refused (it can never be sent); the default ``on_refused`` warns so."""


def _warn(refusal: Refusal) -> None:
    warnings.warn(
        f"record {refusal.index} refused ({refusal.reason}): {refusal.message}",
        RefusedRecordWarning,
        stacklevel=3,
    )


class KinesisBatcher:
    """Splits records into batches for Kinesis ``PutRecords``, in order.

    ``input_format`` is ``"string"`` (records are ``str`` or ``bytes``; size is their
    length in bytes) or ``"json"`` (records are ``{"Data": bytes|str, "PartitionKey": str}``
    dicts; size is data plus key, in bytes). ``formatting`` is accepted as another name for
    it, as the original README's example spells it. The defaults are the original's: 1 MiB
    a record, 5 MiB and 500 records a batch. Limits beyond the service's (500 records,
    10 MiB) raise ``ValueError`` here, at construction, never halfway through a batching.

    ``on_refused(refusal)`` is called, in input order, with each record that can never be
    sent (a :class:`kinesis_batcher.Refusal`: ``index``, ``reason``, ``message``,
    ``record``); by default a :class:`RefusedRecordWarning` is issued.
    """

    def __init__(
        self,
        input_format: str = "string",
        record_max_size: int = 1048576,
        batch_max_size: int = 5242880,
        max_records_per_batch: int = 500,
        *,
        formatting: Optional[str] = None,
        on_refused: Optional[Callable[[Refusal], Any]] = None,
    ) -> None:
        if formatting is not None:
            input_format = formatting
        if input_format not in ("string", "json"):
            raise ValueError('input_format must be "string" or "json"')
        self.input_format = input_format
        self.record_max_size = record_max_size
        self.batch_max_size = batch_max_size
        self.max_records_per_batch = max_records_per_batch
        limits = Limits(max_records_per_batch, batch_max_size, record_max_size)
        self.limits = limits if input_format == "json" else limits.without_partition_keys()
        self.on_refused: Callable[[Refusal], Any] = on_refused if on_refused is not None else _warn

    def batch_data(self, data: Iterable[Any]) -> Iterator[List[Any]]:
        """Yields the batches of ``data`` as lists of its records, in order.

        The whole input is planned first, by the core, so that nothing can fail halfway:
        refused records are handed to ``on_refused`` before the batch that follows them.
        """
        result = plan(data, self.limits)
        refusals = result.refusals
        r = 0
        for batch in result.batches:
            while r < len(refusals) and refusals[r].index < batch.start:
                self.on_refused(refusals[r])
                r += 1
            yield batch.records
        while r < len(refusals):
            self.on_refused(refusals[r])
            r += 1
