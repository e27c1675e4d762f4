"""The stream runtime every long-running stage shares.

A stage (the feature processor, the outcome joiner, the stream scorer, the
online trainer, ...) is a `Task` run by a `Runner`: the runner owns polling,
transactions (outputs, state changelog and input offsets in one commit),
assignment changes, recovery, dead letters, graceful stop and metrics; a
`Stage` is a task that owns its runner (`run`, `run_until_caught_up`,
`close`). Beside
it: changelog-backed state per partition (`state`), compacted topics read as
tables (`table`), reads over fixed offset ranges (`ranges`) and dead letters
(`deadletters`). This package imports only `loopline.log`.
"""
