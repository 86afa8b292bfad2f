"""A camera that takes a burst of photos with one click (``st.camera_input`` takes one a click): a small
Streamlit v2 component around the browser's own camera, which hands the page square JPEG photos.

The photos come from the browser, so they are checked like any upload: at most ``MOST_PHOTOS``, each a JPEG
data URL under ``MAX_PHOTO_BYTES``; core's ingestion then judges each picture by its content."""
from __future__ import annotations

import base64
import binascii

import streamlit as st

MOST_PHOTOS = 30
MAX_PHOTO_BYTES = 2_000_000
INTERVAL_MS = 300         # between photos: time to turn the object a little
_PREFIX = "data:image/jpeg;base64,"

_HTML = """<div class="burst">
  <video autoplay playsinline muted></video>
  <div class="row"><button type="button" disabled></button><span class="status">Opening the camera...</span></div>
</div>"""

_CSS = """
.burst { font-family: inherit; }
.burst video { width: 100%; max-width: 480px; border-radius: 0.5rem; background: #eee; display: block; }
.burst .row { display: flex; gap: 1rem; align-items: center; margin-top: 0.5rem; }
.burst button { padding: 0.4rem 1rem; border-radius: 0.5rem; border: 1px solid #ccc; background: white;
                cursor: pointer; font: inherit; }
.burst button:disabled { cursor: default; opacity: 0.5; }
.burst .status { color: #555; font-size: 0.9rem; }
"""

# Text goes in with textContent only (never innerHTML); the photos go out as one trigger value.
_JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const video = parentElement.querySelector("video");
  const button = parentElement.querySelector("button");
  const status = parentElement.querySelector(".status");
  button.textContent = data.label;
  let stream = null;
  let busy = false;
  let stopped = false;
  navigator.mediaDevices.getUserMedia({ video: true, audio: false }).then((opened) => {
    if (stopped) { opened.getTracks().forEach((track) => track.stop()); return; }
    stream = opened;
    video.srcObject = opened;
    button.disabled = false;
    status.textContent = "Ready";
  }).catch((error) => {
    status.textContent = "The camera could not be opened (" + error.name + "): allow the camera for this page, "
      + "or take single photos instead.";
  });
  button.onclick = async () => {
    if (busy || !stream || !video.videoWidth) return;
    busy = true;
    button.disabled = true;
    const canvas = document.createElement("canvas");
    canvas.width = data.side;
    canvas.height = data.side;
    const photos = [];
    for (let n = 1; n <= data.count; n++) {
      const width = video.videoWidth, height = video.videoHeight, crop = Math.min(width, height);
      canvas.getContext("2d").drawImage(video, (width - crop) / 2, (height - crop) / 2, crop, crop,
                                        0, 0, data.side, data.side);
      photos.push(canvas.toDataURL("image/jpeg", 0.9));
      status.textContent = "Photo " + n + " of " + data.count;
      if (n < data.count) await new Promise((done) => setTimeout(done, data.interval_ms));
    }
    setTriggerValue("photos", photos);
    status.textContent = "Took " + data.count + " photos; ready for the next burst";
    busy = false;
    button.disabled = false;
  };
  return () => {
    stopped = true;
    if (stream) stream.getTracks().forEach((track) => track.stop());
  };
}
"""

_component = st.components.v2.component("transfer_studio_camera_burst", html=_HTML, css=_CSS, js=_JS)


def burst(key: str, count: int, side: int, label: str) -> list[bytes]:
    """Show the burst camera; returns the photos (JPEG bytes) of a burst on the run right after it, else []."""
    result = _component(key=key, data={"count": int(count), "side": int(side), "interval_ms": INTERVAL_MS,
                                       "label": str(label)}, on_photos_change=lambda: None)
    return photos_from(getattr(result, "photos", None))


def photos_from(value) -> list[bytes]:
    """The JPEG bytes in a burst's trigger value; anything else in it is left out."""
    if not isinstance(value, list):
        return []
    photos = []
    for item in value[:MOST_PHOTOS]:
        if not isinstance(item, str) or not item.startswith(_PREFIX) or len(item) > MAX_PHOTO_BYTES * 4 // 3 + 64:
            continue
        try:
            photos.append(base64.b64decode(item[len(_PREFIX):], validate=True))
        except (binascii.Error, ValueError):
            continue
    return photos
