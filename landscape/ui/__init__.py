"""Streamlit glue: the only Streamlit code outside app.py, lab.py and app_pages/."""
