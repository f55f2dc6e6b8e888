"""Batch anonymization of corpora: files and folders on every core, or a Ray Data dataset.

    from veil.batch import BatchOptions, run
    summary = run(["corpus/"], "anonymized/", BatchOptions(scope="corpus", vault=".veil"), jobs=4)

`veil anonymize` and `veil scan` call this for folders, several files, CSV and Parquet, or
`--jobs`. JSON Lines, CSV and text need nothing beyond veil; Parquet needs `veil[parquet]`
(pyarrow) and `veil.batch.ray` needs `veil[ray]`: neither is imported until used. See
docs/batch.md for sizing, how tokens stay consistent across workers, and erasure.
"""

from veil.batch.processor import BatchOptions, Processor, Result
from veil.batch.report import Summary
from veil.batch.runner import BatchRun, ShardDone, run
from veil.batch.shards import FORMATS, InputFile, Shard, find_inputs, plan

__all__ = [
    "FORMATS",
    "BatchOptions",
    "BatchRun",
    "InputFile",
    "Processor",
    "Result",
    "Shard",
    "ShardDone",
    "Summary",
    "find_inputs",
    "plan",
    "run",
]
