"""MediaPipe Hands and a checkpoint of ours side by side on labelled photos (``python -m internet_plus.compare``,
``make compare``; ``docs/compare.md``). One job per module:

- :mod:`~internet_plus.compare.metrics`: the metric math as pure numpy functions (landmark mapping, 2-D EPE and PCK in
  pixels, scale and Procrustes alignment, detection matching);
- :mod:`~internet_plus.compare.labelled`: the labelled photos, from a folder of annotation files or a data set root;
- :mod:`~internet_plus.compare.systems`: running MediaPipe Hands and our model on them;
- :mod:`~internet_plus.compare.report`: per-hand scores, per-system summaries, the table and ``compare.md``;
- :mod:`~internet_plus.compare.montage`: one annotation | MediaPipe | ours picture per photo;
- :mod:`~internet_plus.compare.cli`: the command line.
"""
