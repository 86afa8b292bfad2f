"""core.datasets: a teacher's edits of a dataset, on real files in a temporary folder. Each edit is a new
version folder; the one before stays as it was (a run may be training on it)."""
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from core import datasets, ingest


def png(colour, size=40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def listing(folder) -> dict[str, int]:
    return {card.name: card.count for card in datasets.class_cards(folder)}


@pytest.fixture
def root(tmp_path):
    return tmp_path / "datasets" / "owner"


@pytest.fixture
def pets(root):
    """A saved dataset: cats (2 pictures), dogs (3), at 32 px."""
    folder = datasets.create(root, "Pets", 32)
    folder = datasets.add_pictures(folder, "cats", [("a.png", png((200, 0, 0))), ("b.png", png((190, 0, 0)))]).folder
    return datasets.add_pictures(folder, "dogs", [(f"{n}.png", png((0, 0, 200 - n))) for n in range(3)]).folder


def test_a_new_dataset_is_empty_named_and_loadable(root):
    folder = datasets.create(root, "  Class 4B   pictures ", 32)
    assert folder.parent == root and datasets.class_cards(folder) == []
    assert datasets.name_of(folder) == "Class 4B pictures"
    loaded = ingest.load_labeled(str(folder), 32)
    assert loaded.classes == [] and len(loaded.images) == 0
    assert datasets.name_of(datasets.create(root, "   ", 32)) == datasets.DEFAULT_NAME


def test_pictures_go_into_a_named_class_and_training_reads_them(pets):
    assert listing(pets) == {"cats": 2, "dogs": 3}
    loaded = ingest.load_labeled(str(pets), 32)
    assert loaded.classes == ["cats", "dogs"] and loaded.counts == {"cats": 2, "dogs": 3}
    assert loaded.images.shape == (5, 32, 32, 3)
    assert loaded.images[0, 0, 0].tolist() == [200, 0, 0]
    manifest = json.loads((pets / "manifest.json").read_text())
    assert manifest["counts"] == {"cats": 2, "dogs": 3} and manifest["source"] == "Pets"
    assert manifest["image_size"] == 32
    assert {item["source"] for item in manifest["files"]} >= {"cats/a.png", "dogs/0.png"}


def test_bad_files_are_skipped_with_a_reason_and_the_good_ones_kept(pets):
    added = datasets.add_pictures(pets, "cats", [("c.png", png((180, 0, 0))), ("notes.txt", b"hello")])
    assert added.added == 1 and [s["path"] for s in added.skipped] == ["cats/notes.txt"]
    assert listing(added.folder) == {"cats": 3, "dogs": 3}
    nothing = datasets.add_pictures(added.folder, "cats", [("x.jpg", b"<html>")])
    assert nothing.added == 0 and nothing.folder == added.folder and len(nothing.skipped) == 1


def test_every_edit_is_a_new_version_and_the_old_one_stays_as_it_was(pets):
    before = {p: (pets / p).read_bytes() for p in ("cats/00000.png", "dogs/00002.png", "manifest.json")}
    renamed = datasets.rename_class(pets, "cats", "kittens")
    fewer = datasets.delete_picture(renamed, "dogs/00001.png")
    gone = datasets.delete_class(fewer, "kittens")
    assert len({pets, renamed, fewer, gone}) == 4
    assert listing(pets) == {"cats": 2, "dogs": 3}
    assert {p: (pets / p).read_bytes() for p in before} == before
    assert listing(renamed) == {"dogs": 3, "kittens": 2}
    assert listing(fewer) == {"dogs": 2, "kittens": 2}
    assert listing(gone) == {"dogs": 2}
    # the newest version sorts last, as the page's reload restores it, however fast the edits came
    folders = sorted(p.name for p in pets.parent.iterdir())
    assert folders[-1] == gone.name and not [name for name in folders if "." in name]


def test_rename_keeps_the_pictures_and_follows_the_class_name_rule(pets):
    renamed = datasets.rename_class(pets, "cats", "  Katzen é ")
    loaded = ingest.load_labeled(str(renamed), 32)
    assert loaded.classes == ["Katzen é", "dogs"]
    assert loaded.images[loaded.labels == 0][:, 0, 0].tolist() == [[200, 0, 0], [190, 0, 0]]
    for bad in ("", "a/b", "..", ".hidden", "x" * 101, "\u200b"):
        with pytest.raises(datasets.DatasetEditError) as error:
            datasets.rename_class(pets, "cats", bad)
        assert str(error.value) == ingest.class_name_problem(bad.strip() if bad.strip() else bad)
    with pytest.raises(datasets.DatasetEditError, match='already a class called "dogs"'):
        datasets.rename_class(pets, "cats", "dogs")
    with pytest.raises(datasets.DatasetEditError, match='no class called "birds"'):
        datasets.rename_class(pets, "birds", "owls")


def test_delete_a_picture_then_add_one(pets):
    fewer = datasets.delete_picture(pets, "cats/00001.png")
    assert [card.pictures for card in datasets.class_cards(fewer)][0] == ("cats/00000.png",)
    more = datasets.add_pictures(fewer, "cats", [("c.png", png((10, 10, 10)))]).folder
    assert datasets.class_cards(more)[0].pictures == ("cats/00000.png", "cats/00001.png")
    assert datasets.thumbnail(more, "cats/00001.png", 8)[0, 0].tolist() == [10, 10, 10]
    emptied = datasets.delete_picture(datasets.delete_picture(more, "cats/00000.png"), "cats/00001.png")
    assert listing(emptied) == {"cats": 0, "dogs": 3}  # the class stays, for new pictures


@pytest.mark.parametrize("picture", ["manifest.json", "cats/../dogs/00000.png", "../owner/x.png", "cats",
                                     "cats/00009.png", "cats\\00000.png", "birds/00000.png"])
def test_a_picture_that_is_not_one_of_the_dataset_is_refused(pets, picture):
    with pytest.raises(datasets.DatasetEditError):
        datasets.delete_picture(pets, picture)
    with pytest.raises(datasets.DatasetEditError):
        datasets.thumbnail(pets, picture, 16)


def test_add_an_empty_class_then_delete_it(pets):
    more = datasets.add_class(pets, "birds")
    assert listing(more) == {"birds": 0, "cats": 2, "dogs": 3}
    assert ingest.load_labeled(str(more), 32).classes == ["birds", "cats", "dogs"]
    with pytest.raises(datasets.DatasetEditError, match="already a class"):
        datasets.add_class(more, "birds")
    assert listing(datasets.delete_class(more, "birds")) == {"cats": 2, "dogs": 3}


def test_thumbnails_and_grammar(pets):
    small = datasets.thumbnail(pets, "dogs/00000.png", 16)
    assert small.shape == (16, 16, 3) and small.dtype == np.uint8 and small[0, 0].tolist() == [0, 0, 200]
    assert [datasets.count_words(n) for n in (0, 1, 2)] == ["0 pictures", "1 picture", "2 pictures"]
    assert datasets.count_words(1, "class") == "1 class" and datasets.count_words(3, "class") == "3 classes"


def test_kept_pictures_are_linked_not_copied(pets):
    renamed = datasets.rename_class(pets, "cats", "kittens")
    assert os.stat(renamed / "kittens" / "00000.png").st_ino == os.stat(pets / "cats" / "00000.png").st_ino


def test_a_failed_edit_leaves_no_half_written_folder(pets, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(datasets, "_link_or_copy", no_space)
    with pytest.raises(OSError):
        datasets.rename_class(pets, "cats", "kittens")
    assert sorted(p.name for p in pets.parent.iterdir()) == sorted(
        p.name for p in pets.parent.iterdir() if "." not in p.name)
    assert datasets.class_cards(pets)[0].name == "cats"


def test_save_writes_a_loaded_dataset_as_a_new_version(root, demo_dir):
    loaded = ingest.from_folder(demo_dir, 32)
    first = datasets.save(loaded, root, "Shapes")
    second = datasets.save(loaded, root, "Shapes again")
    assert second.name > first.name and datasets.name_of(second) == "Shapes again"
    assert listing(first) == loaded.counts


def test_versions_made_within_one_second_sort_in_the_order_they_were_made(root, monkeypatch):
    monkeypatch.setattr(datasets.time, "strftime", lambda pattern: "20990101-000000")
    folders = [datasets.create(root, f"version {n}", 8) for n in range(8)]
    assert sorted(folders, key=lambda folder: folder.name) == folders
