import pytest

from uir25m import taxonomy

# DESIGN §2: fixed class ids, codes, families
EXPECTED = [
    (0, "gn", "noise"), (1, "rn", "noise"), (2, "mb", "blur"), (3, "db", "blur"), (4, "gb", "blur"),
    (5, "j", "compression"), (6, "h", "weather"), (7, "rs", "weather"), (8, "rd", "weather"),
    (9, "rsd", "weather"), (10, "s", "weather"), (11, "ms", "others"), (12, "ll", "others"),
    (13, "mr", "others"), (14, "b_j", "mixed"), (15, "b_r", "mixed"), (16, "b_ll_n", "mixed"),
    (17, "ll_h_r_s", "mixed"), (18, "ds_n_b_j", "mixed"),
]


def test_nineteen_fixed_ids_codes_and_families():
    assert [(t.class_id, t.code, t.family) for t in taxonomy.TYPES] == EXPECTED
    assert taxonomy.NUM_CLASSES == 19
    assert taxonomy.in_group("single") == tuple(c for i, c, _ in EXPECTED if i < 14)
    assert taxonomy.in_group("mixed") == ("b_j", "b_r", "b_ll_n", "ll_h_r_s", "ds_n_b_j")
    for cid, code, _ in EXPECTED:
        assert taxonomy.get(code).class_id == cid
        assert taxonomy.by_id(cid).code == code


def test_mixed_types_name_their_single_components():
    for t in taxonomy.TYPES:
        if t.group == "mixed":
            assert t.components and all(taxonomy.get(c).group == "single" for c in t.components)
        else:
            assert t.components == ()
    assert set(taxonomy.get("ll_h_r_s").components) == {"ll", "h", "rs", "s"}


def test_unknown_code_error_lists_valid_codes():
    with pytest.raises(taxonomy.UnknownTypeError) as e:
        taxonomy.get("haze")
    msg = str(e.value)
    assert "'haze'" in msg and "gn, rn, mb" in msg and "ds_n_b_j" in msg
    with pytest.raises(taxonomy.UnknownTypeError, match="valid codes"):
        taxonomy.parse_codes("gn,xx")
    with pytest.raises(taxonomy.UnknownTypeError, match="valid ids"):
        taxonomy.by_id(19)


def test_parse_codes_keeps_order_and_drops_repeats():
    assert taxonomy.parse_codes(" rs, gn,rs ,") == ("rs", "gn")
    assert taxonomy.parse_codes(["h"]) == ("h",)
