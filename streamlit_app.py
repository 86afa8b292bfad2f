"""Transfer Studio's entry point: page config, navigation over the page files, the sidebar frame."""
import streamlit as st

from pages import common

st.set_page_config(page_title="Transfer Studio", page_icon=":material/model_training:", layout="wide")

PAGES = [
    st.Page("pages/1_data.py", title="Data", icon=":material/photo_library:", default=True),
    st.Page("pages/2_model.py", title="Model", icon=":material/tune:"),
    st.Page("pages/3_train.py", title="Train", icon=":material/monitoring:"),
    st.Page("pages/4_autoencoder.py", title="Autoencoder", icon=":material/compress:"),
    st.Page("pages/5_evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("pages/6_predict.py", title="Predict", icon=":material/image_search:"),
    st.Page("pages/7_experiments.py", title="Experiments", icon=":material/science:"),
]

page = st.navigation(PAGES)
common.run_page(common.sync_query_params)
common.run_page(common.sidebar)
page.run()
