"""The app frame and the Data page, driven through AppTest with tiny demo data."""
import io
import re

import numpy as np
import pytest
from PIL import Image

from app_helpers import (app_env, assert_no_exception, errors, load_demo, plotly_specs,  # noqa: F401
                         shown_text, start_app)

HOSTILE_CLASS = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) **bold**"


def png_bytes(colour, size=40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_app_loads_with_frame_and_owner_in_url(app_env):
    at = start_app()
    assert at.title[0].value == "Data"
    sidebar = "\n".join(str(m.value) for m in at.sidebar.markdown)
    assert "CPU" in sidebar or "GPU" in sidebar  # the training device
    assert "None yet" in sidebar  # no dataset, no run
    token = at.query_params["session"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{12,64}", token)


def test_demo_data_fills_the_dataset(app_env):
    at = load_demo(start_app())
    info = at.session_state["dataset"]
    assert info["images"] == 16 and len(info["classes"]) == 4
    assert (app_env / "datasets" / at.session_state["owner"] / info["id"] / "manifest.json").is_file()
    text = shown_text(at)
    assert "Demo shapes" in text and "16 pictures in 4 classes" in text
    bars = plotly_specs(at)["class_counts"]["data"][0]
    assert sorted(bars["y"]) == [4, 4, 4, 4]
    assert len(at.get("image")) >= 4  # thumbnails for every class
    # a reload, as a user would do: a fresh run with the same session token keeps the dataset
    again = start_app({"session": at.session_state["owner"]})
    assert again.session_state["owner"] == at.session_state["owner"]
    sidebar = "\n".join(str(m.value) for m in again.sidebar.markdown)
    assert "16 pictures, 4 classes" in sidebar


def test_a_page_run_without_the_entry_point_still_gets_the_frame(app_env):
    """Streamlit runs a page file without streamlit_app.py when a deep link is the first visit to a
    fresh server (pages-directory mode; tests/browser has that case in Chromium), and AppTest does so on
    every run after its first. The page then builds the navigation and frame itself."""
    at = load_demo(start_app())
    sidebar = "\n".join(str(m.value) for m in at.sidebar.markdown)
    assert "16 pictures, 4 classes" in sidebar
    at.switch_page("pages/2_model.py").run()
    assert_no_exception(at)
    assert at.title[0].value == "Model"
    sidebar = "\n".join(str(m.value) for m in at.sidebar.markdown)
    assert "16 pictures, 4 classes" in sidebar and ("CPU" in sidebar or "GPU" in sidebar)
    assert at.query_params["session"] == at.session_state["owner"]


def jpeg_bytes(colour, size=40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def messages(at) -> list[tuple[str, str]]:
    """The page's messages as (kind, text as read on screen: Markdown escapes undone); its info boxes are
    hints about the dataset, not messages."""
    return [(kind, re.sub(r"\\(.)", r"\1", str(box.value)))
            for kind in ("success", "warning", "error") for box in getattr(at, kind)]


def card_titles(at) -> list[str]:
    return [str(m.value) for m in at.markdown if " · " in str(m.value)]


def test_a_first_class_with_uploads_reports_skipped_files_and_shows_html_names_as_text(app_env):
    at = start_app()
    at.text_input(key="add_class_name_0").set_value(HOSTILE_CLASS)
    at.file_uploader(key="add_class_files_0").set_value([
        ("red.png", png_bytes((255, 0, 0)), "image/png"),
        ("red2.png", png_bytes((250, 5, 5)), "image/png"),
        ("<i>evil.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg"),
    ])
    at.run()
    at.button(key="add_class").click().run()
    assert_no_exception(at)
    assert not errors(at)
    info = at.session_state["dataset"]
    assert info["classes"] == [HOSTILE_CLASS] and info["images"] == 2 and info["name"] == "My pictures"
    # every Markdown source shows the name escaped: no raw tag, no live link
    again = start_app({"session": at.session_state["owner"]})
    sources = ([str(m.value) for m in at.markdown] + [str(m.value) for m in again.sidebar.markdown]
               + [str(box.value) for box in at.warning])
    assert any("onerror" in str(m.value) for m in again.sidebar.markdown)
    assert any(r"\<img src\=x onerror\=alert\(1\)\>" in s for s in sources)
    assert not any(re.search(r"(?<!\\)<", s) or "](javascript" in s or "**bold**" in s for s in sources)
    # the chart's labels are HTML-escaped for Plotly
    [label] = plotly_specs(at)["class_counts"]["data"][0]["x"]
    assert label.startswith("&lt;img src=x onerror=alert(1)&gt;") and "<" not in label
    # the skipped file is reported, with grammar, in a table (cells are text)
    [(kind, text)] = messages(at)
    assert kind == "warning" and text.startswith("Added 2 pictures to ") and "1 file was skipped" in text
    table = at.dataframe[0].value
    assert list(table["file"]) == [f"{HOSTILE_CLASS}/<i>evil.jpg"]
    assert "HTML" in table["why it was skipped"][0] or "not an image" in table["why it was skipped"][0].lower()


def test_a_class_name_with_a_slash_is_refused_in_one_line_and_nothing_typed_is_lost(app_env):
    at = start_app()
    at.text_input(key="add_class_name_0").set_value("<b>a/b</b>")
    at.file_uploader(key="add_class_files_0").set_value([("x.png", png_bytes((0, 0, 255)), "image/png")])
    at.run()
    at.button(key="add_class").click().run()
    assert_no_exception(at)
    [message] = errors(at)
    assert r"\<b\>a/b\</b\>" in message and "contains" in message and "plain name" in message
    assert "<b>" not in message and "\n" not in message
    assert at.text_input(key="add_class_name_0").value == "<b>a/b</b>"  # still there to correct
    assert len(at.file_uploader(key="add_class_files_0").value) == 1
    assert "dataset" not in at.session_state or at.session_state["dataset"] is None  # no dataset started for it


def test_class_cards_rename_delete_upload_and_camera(app_env):
    """A teacher's edits on the demo's cards; each one is what Train uses next, and survives a reload."""
    at = load_demo(start_app())
    assert card_titles(at) == [f"**{name}** · 4 pictures" for name in ("circle", "square", "star", "triangle")]
    first_path = at.session_state["dataset"]["path"]
    assert len(at.get("image")) == 4  # a row of thumbnails a card
    # rename: the class keeps its pictures; the message replaces the demo's
    at.text_input(key="rename_to::circle").set_value("round")
    at.button(key="rename::circle").click().run()
    assert at.session_state["dataset"]["classes"] == ["round", "square", "star", "triangle"]
    assert messages(at) == [("success", "Renamed circle to round.")]
    # a rename onto a taken name: a red line in the card, no green left above it, nothing changed
    at.text_input(key="rename_to::round").set_value("square")
    at.button(key="rename::round").click().run()
    [(kind, text)] = messages(at)
    assert kind == "error" and 'already a class called "square"' in text
    assert at.session_state["dataset"]["classes"] == ["round", "square", "star", "triangle"]
    # delete pictures from "square" down to one: the card's count and its grammar follow
    at.toggle(key="see_all::square").set_value(True).run()
    for left in (3, 2, 1):
        [picture] = [b.key for b in at.button if b.key.startswith("delete_picture::square/")][:1]
        at.button(key=picture).click().run()
        assert at.session_state["dataset"]["counts"]["square"] == left
    assert "**square** · 1 picture" in card_titles(at)
    assert messages(at) == [("success", "Deleted a picture of square: 1 picture left.")]
    # delete a class
    at.button(key="delete_class::star").click().run()
    assert at.session_state["dataset"]["classes"] == ["round", "square", "triangle"]
    assert at.text_input(key="rename_to::triangle").value == "triangle"  # the card that moved up is its own
    # upload into a named class: one good file, one bad one skipped with the reason
    at.file_uploader(key="card_files::triangle::0").set_value([("t.png", png_bytes((9, 9, 9)), "image/png"),
                                                      ("t.txt", b"not a picture", "text/plain")])
    at.run()
    at.button(key="card_add::triangle").click().run()
    assert at.session_state["dataset"]["counts"]["triangle"] == 5
    [(kind, text)] = messages(at)
    assert kind == "warning" and "Added 1 picture to triangle by upload. 1 file was skipped" in text
    # the camera: each photo goes into the class at once, and a fresh camera waits for the next
    at.button(key="camera_toggle::round").click().run()
    for shot in (1, 2):
        at.camera_input(key=f"camera_{shot - 1}").set_value((f"shot{shot}.jpg", jpeg_bytes((0, 200, 0)),
                                                              "image/jpeg")).run()
        assert at.session_state["dataset"]["counts"]["round"] == 4 + shot
    assert [c.key for c in at.camera_input] == ["camera_2"]
    at.segmented_control(key="camera_mode").set_value("A burst").run()  # the burst camera (browser test: photos)
    assert_no_exception(at)
    assert not at.camera_input and "One click takes 10 photos" in shown_text(at)
    # Train starts runs on the current dataset: the edited one, a new folder (the demo's is kept as it was)
    from core import datasets, ingest

    path = at.session_state["dataset"]["path"]
    assert path != first_path and len(datasets.class_cards(first_path)) == 4
    assert ingest.load_labeled(path, 32).counts == {"round": 6, "square": 1, "triangle": 5}
    again = start_app({"session": at.session_state["owner"]})
    assert again.session_state["dataset"]["path"] == path
    assert "12 pictures, 3 classes" in "\n".join(str(m.value) for m in again.sidebar.markdown)


def test_a_new_dataset_starts_empty_and_named_without_merging_into_the_current_one(app_env):
    at = load_demo(start_app())
    demo = at.session_state["dataset"]
    at.text_input(key="new_dataset_name").set_value("Class 4B")
    at.button(key="new_dataset").click().run()
    info = at.session_state["dataset"]
    assert info["name"] == "Class 4B" and info["images"] == 0 and info["path"] != demo["path"]
    assert messages(at) == [("success", "Started Class 4B: add its first class below.")]
    assert card_titles(at) == []
    at.text_input(key="add_class_name_0").set_value("cats")
    at.run()
    at.button(key="add_class").click().run()
    assert card_titles(at) == ["**cats** · 0 pictures"]
    at.file_uploader(key="card_files::cats::0").set_value([("c.png", png_bytes((1, 2, 3)), "image/png")])
    at.run()
    at.button(key="card_add::cats").click().run()
    info = at.session_state["dataset"]
    assert info["name"] == "Class 4B" and info["counts"] == {"cats": 1}  # no demo shapes merged in
    assert "**Class 4B**: 1 picture in 1 class" in shown_text(at)


def test_a_zip_replaces_the_dataset(app_env):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(3):
            archive.writestr(f"shapes/cats/{index}.png", png_bytes((200, 10 * index, 0)))
            archive.writestr(f"shapes/dogs/{index}.png", png_bytes((0, 10 * index, 200)))
        archive.writestr("shapes/../../escape.png", png_bytes((0, 0, 0)))
    at = load_demo(start_app())
    at.file_uploader(key="zip_file").set_value(("pets.zip", buffer.getvalue(), "application/zip"))
    at.run()
    at.button(key="use_zip").click().run()
    assert_no_exception(at)
    info = at.session_state["dataset"]
    assert info["classes"] == ["cats", "dogs"] and info["images"] == 6
    assert "Zip: pets" in info["name"]


def test_an_unusable_workspace_is_explained_not_a_traceback(app_env, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TRANSFER_STUDIO_HOME", str(blocker / "workspace"))
    at = load_demo(start_app())
    [message] = errors(at)
    assert "workspace folder" in message and "TRANSFER_STUDIO_HOME" in message


def test_a_bad_run_id_in_the_url_is_refused(app_env):
    at = start_app({"run": "../x"})
    [message] = errors(at)
    assert "not valid" in message
    assert "run" not in at.query_params
    assert "run_id" not in at.session_state


def test_another_sessions_run_is_not_shown(app_env):
    at = start_app({"run": "20990101-000000-abcdef0123"})
    [message] = errors(at)
    assert "no run" in message.lower() and "this browser session" in message
    assert "run_id" not in at.session_state


def test_a_link_naming_an_experiment_as_the_run_points_to_the_experiments_page(app_env):
    """An experiment is a job in the same runs folder, but no training run: a link with its id as ``run`` is
    refused in words, not shown as a run (an experiment's folder, finished, as the experiment writes it)."""
    from core import runs

    token, experiment = "teachers-session-token", "20261201-000000-e0e0e0e0e0"
    writer = runs.RunWriter(runs.run_path(experiment))
    writer.write_json("job.json", {"kind": "experiment", "owner": token, "experiment": {"kind": "freeze-depth"}})
    writer.set_status("done")
    at = start_app({"session": token, "run": experiment})
    [message] = errors(at)
    assert "one of your experiments" in message and "Experiments page" in message
    assert "run" not in at.query_params and "run_id" not in at.session_state


@pytest.mark.parametrize("page", ["pages/4_autoencoder.py", "pages/5_evaluate.py", "pages/6_predict.py",
                                  "pages/7_experiments.py"])
def test_every_other_page_opens_from_the_navigation(app_env, page):
    start_app(page=page)


def test_a_made_up_session_token_in_a_link_is_refused_and_replaced(app_env):
    """Session fixation: someone hands a victim a link with a token they chose, to read the victim's work
    later. Only tokens this server issued are accepted; any other gets a fresh session and a plain note."""
    chosen = "attackerchosentoken123"
    at = start_app({"session": chosen}, known_session=False)
    assert at.session_state["owner"] != chosen and at.query_params["session"] == at.session_state["owner"]
    assert any("not known on this server" in str(box.value) for box in at.info)
    # the token the server issued works as a reload link, with no note
    again = start_app({"session": at.session_state["owner"]})
    assert again.session_state["owner"] == at.session_state["owner"]
    assert not any("not known" in str(box.value) for box in again.info)


def test_plotly_labels_escape_tags_but_show_quotes_as_quotes():
    from pages import common

    assert common.plotly_text('say "hi" <b>') == 'say "hi" &lt;b&gt;'
    assert common.plotly_text("</script>&") == "&lt;/script&gt;&amp;"


def test_the_burst_camera_takes_only_jpeg_photos_from_the_browser():
    """The burst camera's photos arrive from the browser as data URLs: only JPEGs are taken, at most 30, each
    under the size cap; anything else in the payload is left out (the pictures are then judged by content)."""
    import base64

    from pages import camera_burst

    jpeg = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes((1, 2, 3))).decode()
    assert camera_burst.photos_from([jpeg, jpeg]) == [jpeg_bytes((1, 2, 3))] * 2
    assert camera_burst.photos_from([jpeg] * 50) == [jpeg_bytes((1, 2, 3))] * camera_burst.MOST_PHOTOS
    other = "data:text/plain;base64," + base64.b64encode(jpeg_bytes((1, 2, 3))).decode()  # a prefix as long
    assert camera_burst.photos_from([other, "data:image/jpeg;base64,@@", 7, None,
                                     "data:image/jpeg;base64," + "A" * (camera_burst.MAX_PHOTO_BYTES * 2)]) == []
    assert camera_burst.photos_from("data:image/jpeg;base64,AAAA") == [] and camera_burst.photos_from(None) == []
