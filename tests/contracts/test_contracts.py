"""The contracts both engines read: schema checks name the table and the column."""

from __future__ import annotations

import pyarrow as pa
import pytest

from contracts import ContractError, check_schema
from contracts import infnet as infnet_contract
from contracts import ndm as ndm_contract


def test_a_table_written_to_the_contract_passes():
    table = pa.Table.from_pylist([], schema=infnet_contract.SHARD)
    check_schema("shards/infnet", table.schema, infnet_contract.SHARD)


def test_large_and_view_types_that_delta_rs_hands_out_still_match():
    # delta-rs reads lists as large_list and strings as string_view
    actual = pa.schema([("cascade_id", pa.int64()), ("split", pa.string_view()),
                        ("users", pa.large_list(pa.int64())),
                        ("times", pa.large_list(pa.float64()))])
    check_schema("shards/ndm/x", actual, ndm_contract.CASCADES)


def test_a_missing_column_is_named():
    actual = pa.schema([("cascade_id", pa.int64()), ("users", pa.list_(pa.int64()))])
    with pytest.raises(ContractError, match=r"shards/ndm/x: column 'split' is missing"):
        check_schema("shards/ndm/x", actual, ndm_contract.CASCADES)


def test_a_column_of_another_type_is_named_with_both_types():
    fields = [infnet_contract.SHARD.field(i) for i in range(len(infnet_contract.SHARD))]
    fields[infnet_contract.SHARD.get_field_index("node_role")] = pa.field(
        "node_role", pa.list_(pa.string()))
    with pytest.raises(ContractError, match=r"column 'node_role' is list<item: string>"):
        check_schema("shards/infnet", pa.schema(fields), infnet_contract.SHARD)


def test_a_nested_struct_field_of_another_type_fails():
    week = pa.struct([("week", pa.int32()), ("nodes", pa.list_(pa.string()))])
    actual = pa.schema([("weeks", pa.list_(week))])
    with pytest.raises(ContractError, match="'weeks'"):
        check_schema("t", actual, pa.schema([infnet_contract.SHARD.field("weeks")]))


def test_role_codes_follow_the_one_hot_order():
    assert [infnet_contract.ROLES[c] for c in (infnet_contract.ROLE_TARGET,
            infnet_contract.ROLE_SEED, infnet_contract.ROLE_OTHER)] == ["target", "seed", "other"]


def test_history_kind_codes_follow_their_names():
    c = infnet_contract
    assert [c.HISTORY_KINDS[k] for k in (c.KIND_RECEIVED, c.KIND_SENT, c.KIND_PURCHASE)] == [
        "received", "sent", "purchase"]
    assert c.SHARD.field("history_kinds").type == pa.list_(pa.int32())


def test_ndm_table_names():
    assert (ndm_contract.cascades_table("irvine"), ndm_contract.users_table("irvine"),
            ndm_contract.manifest_table("irvine"), ndm_contract.social_table("irvine")) == (
        "ndm/irvine", "ndm/irvine_users", "ndm/irvine_manifest", "ndm/irvine_social")
