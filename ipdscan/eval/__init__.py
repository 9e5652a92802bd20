"""The detector measured and shown: labelled folders (labelled), scoring them (evaluate), the metrics and their
intervals (metrics), degraded copies (perturbations), the eval report (eval_report) and the explain heatmap
(explain)."""
