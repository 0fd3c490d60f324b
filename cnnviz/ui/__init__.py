"""Streamlit glue: cached wrappers around the library for the pages."""
