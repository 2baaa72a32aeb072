"""Home: what each page teaches."""

import streamlit as st

from landscape.ui import library

st.title("Loss Landscape Lab")
st.markdown(
    """
See what a loss function is, watch a small network learn, and look at the loss surface
around the network it found: the pictures of *Visualizing the Loss Landscape of Neural
Nets* (Li, Xu, Taylor, Studer & Goldstein, NeurIPS 2018), live and explorable.
"""
)

cols = st.columns(2)
with cols[0]:
    st.subheader("Loss shapes")
    st.markdown(
        "L1, L2, Huber, Barron's adaptive loss and the rest of the zoo side by side, with their "
        "derivatives (the *influence* of a residual) and the weight each point gets in robust "
        "regression. An outlier demo shows why Huber and Cauchy fits ignore points that drag "
        "a least-squares line away."
    )
    st.page_link("app_pages/loss_shapes.py", label="Open Loss shapes", icon=":material/show_chart:")
    st.subheader("Train")
    st.markdown(
        "Train a small net on moons, spirals, digits or your own CSV and watch the loss curves "
        "grow (or press Play and watch it live). Compare optimisers, learning rates and losses by overlaying runs; see the "
        "decision boundary of 2D problems. A learning rate that is too large is shown as the "
        "divergence it is."
    )
    st.page_link("app_pages/train.py", label="Open Train", icon=":material/model_training:")
with cols[1]:
    st.subheader("Landscape")
    st.markdown(
        "Slice the loss around a trained net: along random *filter-normalised* directions, "
        "along the line from initialisation to the solution, in the PCA plane of the training "
        "path (with the path drawn on it) or along the sharpest Hessian directions. Contour, "
        "heatmap and rotatable 3D."
    )
    st.page_link("app_pages/loss_landscape.py", label="Open Landscape", icon=":material/landscape:")
    st.subheader("Compare")
    st.markdown(
        "Put two landscapes side by side on one colour scale: skip connections or none, small "
        "or large batches, filter normalisation or none, MSE or Huber, SGD or Adam; with "
        "sharpness figures (top Hessian eigenvalue, trace, basin width) in a table."
    )
    st.page_link("app_pages/compare.py", label="Open Compare", icon=":material/compare:")
    st.subheader("Geometry")
    st.markdown(
        "Paths between two minima: the barrier on the straight line and a learned curve that "
        "avoids it (mode connectivity); the density of all the Hessian's eigenvalues beside "
        "the top ones."
    )
    st.page_link("app_pages/geometry.py", label="Open Geometry", icon=":material/explore:")
    st.subheader("Gallery")
    st.markdown(
        "Li et al.'s headline picture, precomputed: ResNets of 8 to 56 layers with and without "
        "skip connections, side by side, with how rough each slice measured."
    )
    st.page_link("app_pages/gallery.py", label="Open Gallery", icon=":material/photo_library:")

st.divider()
mine, pinned = st.columns(2)
with mine:
    library.my_runs()
with pinned:
    library.classroom()
library.usage_line()
st.caption(
    "Everything here is computed on this server from data generated in code or shipped with "
    "scikit-learn; nothing is downloaded. The same functions work from a notebook "
    "(`import landscape`) and from the command line (`python -m landscape --help`)."
)
