"""Streamlit glue: the only Streamlit code outside app.py and app_pages/."""
