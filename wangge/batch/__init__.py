"""Files in, files out: the batch commands (``wangge classify``, ``route``, ``dedup``).

:mod:`~wangge.batch.files` reads and writes tables of messages (CSV, Excel, JSON, datasets)
with errors that name the file, row and column; :mod:`~wangge.batch.messages` turns their rows
into pipeline messages; the other modules run the :class:`~wangge.pipeline.Triage` pipeline
over a file and write its results as columns next to the input's.
"""
