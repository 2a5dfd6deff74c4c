"""quarantine: one JSONL object per unit, where the pipeline says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from service.models import ObjectInfo, ObjectRef
from service.pipeline.context import BadRow
from service.pipeline.quarantine import QuarantineSpool, quarantine_ref
from tests.pipeline_support import Rig, pipeline


async def test_the_quarantine_is_one_jsonl_object_per_unit(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    info = await rig.put("orders/a.csv", b"id\n1\n")
    p = pipeline(bad_rows=replace(pipeline().bad_rows, quarantine="gs://quarantine/bad"))
    spool = QuarantineSpool()
    spool.add([BadRow(2, "id: 'x' is not a valid INTEGER", '{"id": "x"}')])
    spool.add([])
    written = await spool.publish(rig.store, rig.context(p, info), "rejected")
    spool.close()
    assert written is not None and written.rows == 1
    assert written.uri == f"gs://quarantine/bad/orders/orders/a.csv#{info.ref.generation}.jsonl"
    assert rig.quarantine(p, info) == [
        {"row": 2, "reason": "id: 'x' is not a valid INTEGER", "raw": '{"id": "x"}'},
        {"row": None, "reason": "rejected", "raw": None},
    ]
    await rig.close()


def test_the_default_quarantine_is_beside_the_source(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    info = ObjectInfo(ObjectRef("landing", "in/x.csv", 3), 1)
    ref = quarantine_ref(rig.context(pipeline(), info))
    assert ref == ObjectRef("landing", "_quarantine/orders/in/x.csv#3.jsonl")
