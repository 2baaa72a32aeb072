"""Streamlit glue: the only Streamlit code outside the server scripts (ui/server/)."""
