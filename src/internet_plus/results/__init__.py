"""Our runs beside the paper's published numbers: the library behind ``python -m internet_plus.tasks.collect``.

* :mod:`.runs`: finds run directories and reads what each holds (backbone variant, data set, seed, test metrics,
  validation history, or why it failed);
* :mod:`.tables`: the paper's Tables 2, 5, 6 and 7 rebuilt from the runs (mean ± std over seeds beside
  :data:`internet_plus.paper.ACCURACY`), and the AUC and median EPE in both conventions (the contract's pooled one,
  hand3d's per-keypoint one), written as Markdown and CSV;
* :mod:`.plots`: the PCK curves (Figure 5) and the validation EPE per epoch (Figure 7).
"""
