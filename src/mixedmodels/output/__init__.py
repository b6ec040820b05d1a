"""The printed and HTML summary, the report and the plots."""
