"""The ``ipdscan`` command: the app and its shared options (commands), one module per command group (scan, reports:
merge and report, model: eval and explain, export), the one-line errors and exit 2 (support), the config file
(config_file) and the terminal output (console). Only light modules are imported at the top of each."""
