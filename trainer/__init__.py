"""What made the shipped weights, run from a checkout (not installed): ``python -m trainer.build_corpus``,
``trainer.calibrate``, ``trainer.check_default``, ``trainer.ablate``, ``trainer.make_examples``. Training itself
is ``ipdscan.train`` (``ipdscan train``)."""
