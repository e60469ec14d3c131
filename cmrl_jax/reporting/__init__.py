"""Reporting: learning-curve summaries and tables (``metrics``), intervals over seeds
(``stats``), plots (``plots``), figures of trained runs (``figures``)."""
