"""``trainer/``: the corpus builder and release tooling, run from a checkout and not installed:
``python -m trainer.build_corpus``, ``trainer.pack_corpus``, ``trainer.calibrate``, ``trainer.check_default``,
``trainer.ablate``, ``trainer.make_examples``. Training itself is not here: it is the installed ``ipdscan/train``
package behind ``ipdscan train`` (``python -m ipdscan.train``)."""
