"""Everything that writes or reads a report: the writers (writers picks csv_report, json_report, sarif or
html_report by output_format), the header (header; header_file beside a .csv/.jsonl), the lock, atomic publishing
(publish), merge, suppressions (suppress) and the score colours the HTML report and explain share."""
