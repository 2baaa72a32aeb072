"""A tiny app around landscape.ui.upload.upload_widget, for AppTest (tests/test_upload.py).

Another widget (a slider) stands for "the rest of the session": a rejected upload must not
reset it.
"""

import streamlit as st

from landscape.ui.upload import upload_widget

other = st.slider("Something else the user set", 0, 10, 3, key="other")
name = upload_widget("up")
st.markdown(f"result: {name}")
