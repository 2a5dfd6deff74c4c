"""The embedded object store: names map to files one-to-one, every write a new generation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.adapters.local.directory_store import (
    DirectoryObjectStore,
    decode_name,
    encode_name,
)
from service.errors import NotFoundError, PermanentError
from service.models import ObjectRef
from tests.listing_kit import all_pages

BUCKET = "landing"
# Names a file system would resolve to one path; on GCS each is its own object.
ALIASES = (
    "orders/x.csv",
    "orders/./x.csv",
    "orders//x.csv",
    "orders/../orders/x.csv",
    "/orders/x.csv",
    "./orders/x.csv",
)
# Names that are valid on GCS and hostile to a file system.
ODD_NAMES = (
    "a\x00b.csv",
    "50%off.csv",
    "%2E%2E/x.csv",
    "..",
    "../../../etc/passwd",
    ".hidden",
    "tab\there",
    "2026-11-20T08:15:00Z [1]?.csv",
    "наименование/ファイル.csv",
    "%",
    "a/%/b",
    "trailing/",
)


@pytest.fixture
def store(tmp_path: Path) -> DirectoryObjectStore:
    return DirectoryObjectStore(tmp_path / "buckets")


def stored_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Every file under ``root``: (object data, metadata)."""
    files = [p for p in root.rglob("*") if p.is_file()]
    return [p for p in files if ".meta" not in p.parts], [p for p in files if ".meta" in p.parts]


async def read_all(store: DirectoryObjectStore, ref: ObjectRef) -> bytes:
    return b"".join([chunk async for chunk in store.read(ref, 1024)])


@pytest.mark.parametrize("name", ALIASES + ODD_NAMES)
def test_encoding_round_trips(name: str) -> None:
    assert decode_name(tuple(encode_name(name))) == name


async def test_aliased_names_are_distinct_objects(store: DirectoryObjectStore) -> None:
    for number, name in enumerate(ALIASES):
        store.put(BUCKET, name, f"object {number}".encode())
    for number, name in enumerate(ALIASES):
        info = await store.stat(ObjectRef(BUCKET, name))
        assert info.ref.generation == 1
        assert await read_all(store, info.ref) == f"object {number}".encode()
    listed = [info.ref.name for info in await store.list(BUCKET, "")]
    assert sorted(listed) == sorted(ALIASES)


@pytest.mark.parametrize("name", ODD_NAMES)
async def test_an_odd_name_is_stored_inside_its_bucket_and_listed_as_given(
    store: DirectoryObjectStore, tmp_path: Path, name: str
) -> None:
    store.put(BUCKET, name, name.encode())
    assert [info.ref.name for info in await store.list(BUCKET, "")] == [name]
    assert await read_all(store, ObjectRef(BUCKET, name, 1)) == name.encode()
    data, meta = stored_files(tmp_path)
    assert all(p.is_relative_to(tmp_path / "buckets" / BUCKET) for p in data)
    assert all(p.is_relative_to(tmp_path / "buckets" / ".meta" / BUCKET) for p in meta)


async def test_a_name_never_stored_is_not_found(store: DirectoryObjectStore) -> None:
    store.put(BUCKET, "orders/x.csv", b"x")
    for name in ("orders/./x.csv", "orders//x.csv", "orders\x00x.csv", "orders/x.csv/"):
        with pytest.raises(NotFoundError):
            await store.stat(ObjectRef(BUCKET, name))


async def test_a_segment_too_long_for_a_file_name_is_a_permanent_error(
    store: DirectoryObjectStore,
) -> None:
    name = "orders/" + "x" * 300 + ".csv"
    with pytest.raises(PermanentError):
        await store.stat(ObjectRef(BUCKET, name))
    with pytest.raises(PermanentError):
        store.put(BUCKET, name, b"x")


async def test_an_object_beside_its_own_folder_is_refused_not_aliased(
    store: DirectoryObjectStore,
) -> None:
    store.put(BUCKET, "a", b"file")
    with pytest.raises(PermanentError):
        store.put(BUCKET, "a/b", b"under")
    with pytest.raises(NotFoundError):
        await store.stat(ObjectRef(BUCKET, "a/b"))
    assert await read_all(store, ObjectRef(BUCKET, "a", 1)) == b"file"


async def test_listing_by_prefix_returns_original_names(store: DirectoryObjectStore) -> None:
    for name in ("orders/2026-11-20.csv", "orders/2026-11-21.csv", "orders//x", "other/y"):
        store.put(BUCKET, name, b"x")
    assert [i.ref.name for i in await store.list(BUCKET, "orders/2026-11-2")] == [
        "orders/2026-11-20.csv",
        "orders/2026-11-21.csv",
    ]
    assert [i.ref.name for i in await store.list(BUCKET, "orders//")] == ["orders//x"]
    assert len(await store.list(BUCKET, "orders/")) == 3
    assert await store.list(BUCKET, "missing/") == []


async def test_every_write_is_a_new_generation_even_of_the_same_bytes(
    store: DirectoryObjectStore,
) -> None:
    first = store.put(BUCKET, "orders/x.csv", b"same")
    second = store.put(BUCKET, "orders/x.csv", b"same")
    assert (first.generation, second.generation) == (1, 2)
    with pytest.raises(NotFoundError):
        await store.stat(first)
    assert (await store.stat(second)).md5_base64 is not None


async def test_a_file_dropped_in_by_hand_is_an_object(
    store: DirectoryObjectStore, tmp_path: Path
) -> None:
    folder = tmp_path / "buckets" / BUCKET / "orders"
    folder.mkdir(parents=True)
    (folder / "2026-11-20.csv").write_bytes(b"a,b\n")
    (folder / ".2026-11-20.csv.tmp").write_bytes(b"half written")
    [info] = await store.list(BUCKET, "orders/")
    assert info.ref.name == "orders/2026-11-20.csv"
    assert await read_all(store, info.ref) == b"a,b\n"


@pytest.mark.parametrize("bucket", ["", ".meta", "a/b", "a%b"])
async def test_a_bucket_name_that_is_not_one_folder_is_refused(
    store: DirectoryObjectStore, bucket: str
) -> None:
    with pytest.raises(PermanentError):
        await store.stat(ObjectRef(bucket, "x"))


# Writes of one name from one process, printing each generation it was given.
WRITER = """
import sys
from pathlib import Path
from service.adapters.local.directory_store import DirectoryObjectStore
store = DirectoryObjectStore(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    print(store.put("landing", "same.csv", b"x").generation, flush=True)
"""
WRITES_EACH = 200


def test_processes_writing_one_name_never_share_a_generation(tmp_path: Path) -> None:
    """A server and an upload beside it (or two uploads) each pick the next generation."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(WRITES_EACH)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    given = []
    for writer in writers:
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        given += [int(line) for line in out.split()]
    assert sorted(given) == list(range(1, 2 * WRITES_EACH + 1))


async def test_a_paged_listing_gives_every_name_once_in_order(store: DirectoryObjectStore) -> None:
    names = sorted(f"orders/{d}/{i}.csv" for d in ("a", "a-b", "b") for i in range(4))
    for name in [*names, "other/x"]:
        store.put(BUCKET, name, b"x")
    pages = await all_pages(store, BUCKET, "orders/", 5)
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [n for p in pages for n in p] == names
    empty = await store.list_page(BUCKET, "missing/", None, 5)
    assert (empty.objects, empty.next_token) == ((), None)
