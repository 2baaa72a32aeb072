"""The Streamlit server: app.py (the st.App), lab.py (the frame every page shares) and
app_pages/ (one script per page). Streamlit runs these as scripts; nothing imports them."""
