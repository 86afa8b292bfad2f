"""The weights choice and what it means before Start, shared by the Model and Train pages (and named in words
wherever a page shows it); and the session's settings kept on the server with the session
(core.session_settings), restored by common.config() after a reload or on a deep link to any page. A
component, not a page: the app's st.navigation lists only common.PAGE_FILES.

The choice is held in one place, ``config["weights"]``: "imagenet", "none", the path of the session's
uploaded file, or "" for "a weights file" while none is uploaded (the config is then invalid, so nothing
starts from other weights than the ones the radio shows). The uploaded file is also kept apart
(``st.session_state["weights_file"]``), so choosing another option and coming back finds it again.
"""
from __future__ import annotations

import logging

import streamlit as st

from core import session_settings
from core import weights as vgg16_weights
from pages import common

log = logging.getLogger("transfer_studio.app")

CHOICE_KEY = "cfg::weights_choice"  # the Model page's radio (a cfg:: key: the seed preset resets it too)
FILE_KEY = "weights_file"           # {"path", "name"} of the session's uploaded weights file
SAVED_KEY = "_settings_saved"       # what was last written to the workspace (None: nothing yet)
LABELS = {"imagenet": "ImageNet (pretrained)", "none": "None (random start)", "file": "A weights file"}
FILE_TYPES = ["h5"]


# ---------------------------------------------------------------------- the session's settings on the server

def restore() -> None:
    """Take the settings and the uploaded weights file this session kept on the server, if any. Called by
    ``common.config()`` alone, the first time a browser session needs its settings (after a reload, or on a
    deep link to any page), before it falls back to the defaults."""
    try:
        kept = session_settings.load(common.owner(), vgg16_weights.uploads_folder(common.owner()))
    except (OSError, ValueError) as error:
        log.warning("settings of this session could not be read: %s", error)
        return
    if kept is None:
        return
    st.session_state["config"] = kept["config"]
    if kept["weights_file"]:
        st.session_state[FILE_KEY] = kept["weights_file"]
    st.session_state[SAVED_KEY] = _record()
    for key in [k for k in st.session_state if str(k).startswith("cfg::")]:
        del st.session_state[key]  # the widgets take the restored values when drawn


def _record() -> tuple:
    return (repr(sorted(common.config().items())), repr(st.session_state.get(FILE_KEY)))


def remember() -> None:
    """Keep the settings with the session on the server when they changed (a convenience: a workspace that
    cannot be written is explained where the pages write to it, so this only logs)."""
    record = _record()
    if st.session_state.get(SAVED_KEY) == record:
        return
    try:
        session_settings.save(common.owner(), common.config(), st.session_state.get(FILE_KEY))
        st.session_state[SAVED_KEY] = record
    except (OSError, ValueError) as error:
        log.warning("settings of this session could not be kept: %s", error)


# ---------------------------------------------------------------------- the choice

def choice_of(weights) -> str:
    return weights if weights in ("imagenet", "none") else "file"


def choose(choice: str) -> None:
    """Set the weights to ``choice``; "file" takes the session's uploaded file, or "" while there is none."""
    if choice == "file":
        uploaded = st.session_state.get(FILE_KEY)
        common.config()["weights"] = uploaded["path"] if uploaded else ""
    else:
        common.config()["weights"] = choice
    remember()


def _radio_changed() -> None:
    choose(st.session_state[CHOICE_KEY])


def _take_upload(key: str) -> None:
    """Keep a newly uploaded weights file (once per upload) and choose it; a wrong file is explained."""
    upload = st.session_state.get(key)
    if upload is None:
        return
    try:
        record = vgg16_weights.save_upload(common.owner(), upload.name, upload.getvalue())
    except Exception as error:  # noqa: BLE001 - shown in words below the uploader
        st.session_state["_weights_upload_error"] = common.explain(error)
        return
    st.session_state[FILE_KEY] = record
    choose("file")


def uploader(where: str) -> None:
    """A file uploader that checks and uses a VGG16 weights file as soon as it arrives."""
    key = f"weights_upload_{where}"
    st.file_uploader("VGG16 weights without the top (.h5 or .weights.h5)", type=FILE_TYPES, key=key,
                     on_change=_take_upload, args=(key,))
    problem = st.session_state.pop("_weights_upload_error", None)
    if problem:
        st.error(problem)


def described(status: vgg16_weights.WeightsStatus) -> str:
    """The status in words, naming the session's uploaded file by the name it was uploaded under."""
    uploaded = st.session_state.get(FILE_KEY)
    if status.source == "file" and uploaded and common.config().get("weights") == uploaded["path"]:
        return f"Your uploaded weights file {common.plain(uploaded['name'], 80)} is ready."
    return status.message


def in_words(weights: str) -> str:
    """The weights choice in words (Markdown-safe) for a line that names it: an uploaded file by the name it
    was uploaded under, never by its server path (which holds the session token)."""
    if weights in ("imagenet", "none"):
        return LABELS[weights]
    uploaded = st.session_state.get(FILE_KEY)
    if uploaded and weights == uploaded["path"]:
        return f"your uploaded file {common.plain(uploaded['name'], 80)}"
    return "a weights file" + ("" if weights else " (none uploaded yet)")


def status_message(status: vgg16_weights.WeightsStatus) -> None:
    if status.state == "ready":
        st.success(described(status), icon=":material/check_circle:")
    elif status.state == "download":
        st.info(status.message)
    else:
        st.warning(f"{status.message} Choose another start above, or ask whoever runs the server to prepare "
                   f"the ImageNet weights (`{vgg16_weights.FETCH_COMMAND}`).")


def using_file_caption() -> None:
    uploaded = st.session_state.get(FILE_KEY)
    if uploaded and common.config().get("weights") == uploaded["path"]:
        st.caption(f"Using your uploaded file **{common.plain(uploaded['name'], 80)}**; "
                   "upload another to replace it.")


# ---------------------------------------------------------------------- the pages

def section() -> vgg16_weights.WeightsStatus:
    """The Model page's weights: the choice, whether it is there before Start, an upload for a file.
    Returns the status of the choice."""
    st.subheader("Weights")
    values = common.config()
    st.session_state[CHOICE_KEY] = choice_of(values.get("weights"))  # the radio always shows the real choice
    choice = st.radio("Start from", list(LABELS), key=CHOICE_KEY, horizontal=True, format_func=LABELS.get,
                      on_change=_radio_changed)
    status = vgg16_weights.status(values.get("weights", "imagenet"))
    if choice == "none":
        st.caption("A random start learns slowly and needs many pictures; fine for trying the app.")
    else:
        status_message(status)
    if choice == "file":
        uploader("model")
        using_file_caption()
    return status


def notice() -> bool:
    """Above the Train page's Start: whether the chosen weights are there, and when they are not, the other
    choices in place (random weights, an upload). Also keeps the session's settings.
    Returns whether a run with the chosen weights can start."""
    remember()
    weights = common.config().get("weights", "imagenet")
    status = vgg16_weights.status(weights)
    if status.state == "ready":
        st.caption(f"Weights: {described(status)}")
        return True
    if status.state == "download":
        st.info(status.message)
        return True
    with st.container(border=True):
        st.warning(f"{status.message} Choose here how to start instead (or on the **Model** page):")
        left, right = st.columns([1, 2])
        left.button("Start from random weights", key="weights_random", on_click=choose, args=("none",),
                    help="Learns slowly and needs many pictures, but needs no file.")
        with right:
            uploader("train")
    return False
