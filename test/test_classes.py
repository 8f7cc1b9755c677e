from __future__ import annotations

import numpy as np
import pytest

from depth_panoptic_ros.classes import ClassInfo, ClassTable


def test_cityscapes_table_follows_train_ids() -> None:
    table = ClassTable.cityscapes()
    assert len(table) == 19
    assert table.names[0] == "road" and table.ids[0] == 7
    assert table.names[13] == "car" and table.ids[13] == 26 and table.is_thing[13]
    assert tuple(table.colors[13]) == (0, 0, 142)
    # Cityscapes things: person, rider, car, truck, bus, train, motorcycle, bicycle (train ids 11..18)
    assert table.thing_indices.tolist() == list(range(11, 19))
    assert table.stuff_indices.tolist() == list(range(0, 11))


def test_class_index_of_panoptic_ids() -> None:
    table = ClassTable((ClassInfo(7, "road", False, (1, 2, 3)), ClassInfo(26, "car", True, (4, 5, 6))))
    ids = np.array([[0, 7000, 26001], [26012, 99000, 7000]])
    assert table.class_index(ids).tolist() == [[-1, 0, 1], [1, -1, 0]]


def test_dict_round_trip_and_validation() -> None:
    table = ClassTable.cityscapes()
    assert ClassTable.from_dict(table.to_dict()) == table
    with pytest.raises(ValueError, match="unique"):
        ClassTable((ClassInfo(7, "a", False, (0, 0, 0)), ClassInfo(7, "b", True, (0, 0, 0))))
    with pytest.raises(ValueError, match="void"):
        ClassTable((ClassInfo(0, "a", False, (0, 0, 0)),))
    with pytest.raises(ValueError, match="malformed class table"):
        ClassTable.from_dict({"classes": [{"id": 1}]})
