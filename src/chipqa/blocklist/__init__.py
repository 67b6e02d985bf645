"""The blocklist: a reviewer's decisions on chips, kept in a CSV beside the dataset.

Each name has one home:

- :mod:`chipqa.blocklist.csvformat`: the file format: :class:`Decision` rows, the
  columns, the header rules, which row wins, and :class:`BlocklistError`;
- :mod:`chipqa.blocklist.csvread`: reading a file (``read_blocklist``,
  ``blocked_ids``, ``read_rows``): every row checked, torn last rows, large files;
- :mod:`chipqa.blocklist.csvwrite`: writing rows and whole files (``render``);
- :mod:`chipqa.blocklist.cells`: what text may go into a cell (chip ids, control
  characters), how numbers and times are written;
- :mod:`chipqa.blocklist.diskfile`: keeping one file in step with the disk: the lock,
  taking in rows other processes appended, append and fsync, atomic rewrite and
  compaction;
- :mod:`chipqa.blocklist.store`: :class:`BlocklistStore`, the decisions of a review
  session on top of that file: decide, bulk decisions, label fixes, undo, export.

This package imports nothing from the review, so the dataset reader can apply the
label fixes a blocklist records.
"""
