"""``streamlit run app.py`` in a clone serves the app the package holds
(landscape/ui/server/app.py; an installed copy is started with ``landscape app``)."""

import streamlit as st

from landscape.ui.server.app import LAB, lifespan

app = st.App(LAB, lifespan=lifespan)
