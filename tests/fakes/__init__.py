"""Test-only fakes shared by the tests, imported as ``from fakes.<module> import ...`` (``tests/`` is on ``sys.path``,
as for ``conftest``).

Data set trees in the official formats, one module per format: ``fakes.rhd`` (RHD_published_v2), ``fakes.stb``
(STB) and ``fakes.interhand`` (InterHand2.6M) write the files a reader expects and nothing else; what the trees hold
is up to each test. The synthetic InterHand2.6M set itself is part of the package
(:mod:`internet_plus.data.synthetic.interhand`).
"""
