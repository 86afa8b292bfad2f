"""Hostile and broken zips: nothing is written anywhere, nothing crashes, every refusal has a reason."""
import io
import os
import struct
import zipfile

import pytest

import badfiles
from badfiles import zip_bytes
from core import ingest
from core.ingest import DatasetError, Limits

SIZE = 8
TINY_PNG = badfiles.png(size=(4, 4))


def patch_last_member(data: bytes, *, local_offset: int, central_offset: int, fmt: str, value) -> bytes:
    """Overwrite one field of the last member in both its local header and its central directory entry."""
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[-1]
    patched = bytearray(data)
    struct.pack_into(fmt, patched, info.header_offset + local_offset, value)
    central = bytes(patched).rfind(b"PK\x01\x02")  # the central directory follows all member data
    struct.pack_into(fmt, patched, central + central_offset, value)
    return bytes(patched)


def snapshot(*folders) -> dict:
    return {str(folder): sorted(os.listdir(folder)) for folder in folders}


def reasons(dataset) -> dict:
    return {entry["path"]: entry["reason"] for entry in dataset.skipped}


def test_path_traversal_members_are_skipped_and_nothing_is_written(tmp_path):
    data = zip_bytes({"../evil.png": TINY_PNG, "/abs/evil.png": TINY_PNG, "C:/evil.png": TINY_PNG,
                      "cats\\..\\..\\evil.png": TINY_PNG, "../../cats/evil.png": TINY_PNG,
                      "cats/a.png": TINY_PNG, "dogs/b.png": TINY_PNG})
    zip_path = tmp_path / "upload.zip"
    zip_path.write_bytes(data)
    watched = (tmp_path.parent, tmp_path, os.getcwd())
    before = snapshot(*watched)
    for source in (zip_path, data):
        dataset = ingest.from_zip(source, SIZE)
        assert dataset.paths == ["cats/a.png", "dogs/b.png"] and dataset.classes == ["cats", "dogs"]
        assert reasons(dataset) == {name: "unsafe path in zip" for name in (
            "../evil.png", "/abs/evil.png", "C:/evil.png", "cats\\..\\..\\evil.png", "../../cats/evil.png")}
    assert snapshot(*watched) == before
    assert not (tmp_path.parent / "evil.png").exists() and not os.path.exists("/abs/evil.png")


def test_member_over_the_size_cap_is_skipped_without_reading_it():
    data = zip_bytes({"cats/huge.png": b"\x00" * 3_000_000, "cats/a.png": TINY_PNG, "dogs/b.png": TINY_PNG})
    assert len(data) < 20_000  # a small download that would be big in memory
    dataset = ingest.from_zip(data, SIZE, limits=Limits(max_member_bytes=1_000_000))
    assert dataset.paths == ["cats/a.png", "dogs/b.png"]
    assert reasons(dataset)["cats/huge.png"].startswith("too large")


def test_header_that_understates_the_size_is_caught():
    real = badfiles.encode(badfiles.noise((64, 64)), "PNG")
    data = zip_bytes({"cats/a.png": TINY_PNG, "dogs/b.png": TINY_PNG, "cats/liar.png": real})
    # Uncompressed size: offset 22 in the local header, 24 in the central directory entry.
    lying = patch_last_member(data, local_offset=22, central_offset=24, fmt="<I", value=100)
    assert zipfile.ZipFile(io.BytesIO(lying)).getinfo("cats/liar.png").file_size == 100
    dataset = ingest.from_zip(lying, SIZE, limits=Limits(max_member_bytes=1000))
    assert dataset.paths == ["cats/a.png", "dogs/b.png"]
    reason = reasons(dataset)["cats/liar.png"]
    assert "corrupt" in reason or "too large" in reason


def test_reading_stops_once_actual_bytes_pass_the_cap():
    # zipfile itself cuts a lying member at its declared size; this guard must hold even if a reader did not.
    class LyingArchive:
        def open(self, info):
            return io.BytesIO(b"\x00" * 5000)

    info = zipfile.ZipInfo("cats/a.png")
    info.file_size = 10
    reader = ingest._ZipReader(LyingArchive(), Limits(max_member_bytes=1000))
    with pytest.raises(ingest._Skip, match=r"too large \(more than 0.001 MB uncompressed\)"):
        reader.read(info)


def test_total_uncompressed_bytes_are_capped():
    picture = badfiles.encode(badfiles.noise((32, 32)), "PNG")  # about 3 KB each
    members = {f"{'cats' if i % 2 else 'dogs'}/{i}.png": picture for i in range(6)}
    dataset = ingest.from_zip(zip_bytes(members), SIZE, limits=Limits(max_total_bytes=len(picture) * 2 + 10))
    assert len(dataset.images) == 2 and len(dataset.skipped) == 4
    assert all("limit of" in reason and "total" in reason for reason in reasons(dataset).values())


def test_too_many_entries_are_refused_in_one_line_before_any_work():
    members = {f"{'cats' if i % 2 else 'dogs'}/{i:04d}.png": TINY_PNG for i in range(3000)}
    with pytest.raises(ingest.DatasetError) as caught:
        ingest.from_zip(zip_bytes(members, zipfile.ZIP_STORED), SIZE, limits=Limits(max_members=1000))
    assert "more than 1000 entries" in str(caught.value) and "\n" not in str(caught.value)


def test_folder_entries_count_toward_the_limit():
    """A small zip of empty folder entries would otherwise become thousands of classes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(1001):
            archive.writestr(zipfile.ZipInfo(f"class{index:05d}/"), b"")
        archive.writestr("a/1.png", TINY_PNG)
    with pytest.raises(ingest.DatasetError) as caught:
        ingest.from_zip(buffer.getvalue(), SIZE, limits=Limits(max_members=1000))
    assert "more than 1000 entries (files and folders together)" in str(caught.value)


def test_mac_and_windows_clutter_is_ignored_and_a_single_top_folder_stripped():
    dataset = ingest.from_zip(zip_bytes({
        "__MACOSX/export/cats/._a.png": b"\x00\x05\x16\x07",
        "__MACOSX/._export": b"\x00\x05\x16\x07",
        "export/.DS_Store": b"Bud1",
        "export/cats/Thumbs.db": b"\xd0\xcf",
        "export/cats/a.png": TINY_PNG,
        "export/dogs/b.png": TINY_PNG,
        "export/readme.txt": b"hello",
    }), SIZE)
    assert dataset.classes == ["cats", "dogs"] and dataset.paths == ["cats/a.png", "dogs/b.png"]
    assert reasons(dataset) == {"readme.txt": "not in a class folder"}


def test_a_zip_of_one_class_folder_is_not_stripped():
    dataset = ingest.from_zip(zip_bytes({"cats/a.png": TINY_PNG, "cats/b.png": TINY_PNG}), SIZE)
    assert dataset.classes == ["cats"] and dataset.counts == {"cats": 2}
    with pytest.raises(DatasetError, match=r'found 1 \("cats"\)'):
        ingest.check_trainable(dataset, 0.2)


def test_utf8_names_without_the_utf8_flag_are_decoded():
    data = zip_bytes({"dogs/a.png": TINY_PNG, "кошки/b.png": TINY_PNG})
    # Bit 11 of the flags (offset 6 local, 8 central) says "names are UTF-8"; some zip tools never set it.
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("кошки/b.png")
    unflagged = patch_last_member(data, local_offset=6, central_offset=8, fmt="<H",
                                  value=info.flag_bits & ~0x800)
    assert zipfile.ZipFile(io.BytesIO(unflagged)).infolist()[-1].filename != "кошки/b.png"
    assert ingest.from_zip(unflagged, SIZE).classes == ["dogs", "кошки"]


def test_encrypted_member_is_skipped_with_a_reason():
    data = zip_bytes({"cats/a.png": TINY_PNG, "dogs/b.png": TINY_PNG, "dogs/secret.png": TINY_PNG})
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("dogs/secret.png")
    locked = patch_last_member(data, local_offset=6, central_offset=8, fmt="<H", value=info.flag_bits | 0x1)
    assert "encrypted" in reasons(ingest.from_zip(locked, SIZE))["dogs/secret.png"]


def test_a_corrupt_member_is_skipped_not_raised():
    data = bytearray(zip_bytes({"cats/a.png": TINY_PNG, "dogs/b.png": badfiles.png(size=(40, 40))}))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("dogs/b.png")
    start = info.header_offset + 30 + len(info.filename)  # first byte of the compressed data
    data[start:start + 8] = b"\xff" * 8
    dataset = ingest.from_zip(bytes(data), SIZE)
    assert dataset.paths == ["cats/a.png"] and reasons(dataset)["dogs/b.png"]


# named ids: a zip's bytes hold the time it was made, so ids made from them differ between the test processes
@pytest.mark.parametrize("source", [b"not a zip at all", badfiles.png(), b"",
                                    zip_bytes({"cats/a.png": TINY_PNG})[:40]],
                         ids=["text", "a picture", "empty", "a cut zip"])
def test_not_a_zip_is_a_dataset_error(source, tmp_path):
    with pytest.raises(DatasetError, match="is not a valid zip file"):
        ingest.from_zip(source, SIZE)
    with pytest.raises(DatasetError, match="is not a valid zip file"):
        ingest.from_zip(io.BytesIO(source), SIZE)
    path = tmp_path / "photos.zip"
    path.write_bytes(source)
    with pytest.raises(DatasetError, match=r'"[^"]*photos.zip" is not a valid zip file'):
        ingest.load_labeled(path, SIZE)


def test_an_empty_zip_is_an_empty_dataset():
    dataset = ingest.from_zip(zip_bytes({}), SIZE)
    assert dataset.images.shape == (0, SIZE, SIZE, 3) and dataset.classes == [] and dataset.skipped == []
