"""The scan: sources to report rows. Inputs become ``Item``s (sources, walk, urls, shards), their bytes are fetched
(fetch, local_files; URLs through ``ipdscan.net``), decoded and cropped in workers (cpu_stage, decode, tiles),
scored (device_stage, scoring) by a ``Backend`` (``ipdscan.model``) under one ``ScanPlan`` (plan), run by an executor
(pipeline, torch_loader, worker_pool, ray_scan) and written by ``ScanJob`` (job) through ``ipdscan.reports``.

The library's ``ipdscan.scan`` is ``pipeline.scan``, re-exported by the package (this folder is named ``scanning`` so
that ``ipdscan.scan`` keeps one meaning). Nothing is imported here: each module is imported by name."""
