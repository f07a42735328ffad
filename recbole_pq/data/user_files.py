"""A user's own ``NAME.inter`` file: checked line by line, and its columns loaded without YAML.

RecBole loads only ``user_id`` and ``item_id`` of a data set it has no settings for, and its
sequential models then stop at ``[timestamp] is not exist in interaction``.  A file in
RecBole's atomic format (tab-separated, ``name:type`` header) needs no settings here: the
header says which columns exist, and they are loaded.  A file that RecBole would misread
(empty, header only, another delimiter, no types, a timestamp that is not a number) gets
a DataFileError naming the file, the line and what is expected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recbole_pq.errors import DataFileError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
EXAMPLE_HEADER = "user_id:token<TAB>item_id:token<TAB>timestamp:float"


def read_header(inter_file: Path) -> dict[str, str]:
    """Column name -> RecBole type from the header line of a tab-separated atomic file."""
    with open(inter_file, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n")
    if not header.strip():
        raise DataFileError(f"{inter_file} is empty: line 1 must be a header such as {EXAMPLE_HEADER}, "
                            f"then one interaction per line.")
    fields = header.split("\t")
    if len(fields) == 1:
        other = next((sep for sep in (",", ";", "|", " ") if sep in header), None)
        if other:
            raise DataFileError(f"{inter_file} line 1: columns must be separated by tabs, found {other!r} in "
                                f"{header!r}; RecBole's atomic files look like {EXAMPLE_HEADER}.")
    columns = {}
    for field in fields:
        name, _, kind = field.partition(":")
        if kind not in FIELD_TYPES:
            raise DataFileError(f"{inter_file} line 1: column {field!r} needs a type, one of {list(FIELD_TYPES)} "
                                f"(name:type, e.g. {EXAMPLE_HEADER}).")
        columns[name] = kind
    return columns


def check_inter_file(inter_file: Path, user_field: str, item_field: str, time_field: str) -> list[str]:
    """The columns to load from a user's file, after checking it; DataFileError if it is unusable."""
    columns = read_header(inter_file)
    missing = [f for f in (user_field, item_field, time_field) if f not in columns]
    if missing:
        why = (" (sequential models order each user's interactions by it: any increasing number, e.g. the "
               "line number, will do)") if time_field in missing else ""
        raise DataFileError(f"{inter_file} line 1: no column {', '.join(repr(f) for f in missing)}{why}; found "
                            f"{list(columns)}, expected {EXAMPLE_HEADER}.")
    try:
        frame = pd.read_csv(inter_file, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except pd.errors.ParserError as err:  # pandas names the line and the field counts
        raise DataFileError(f"{inter_file}: {str(err).strip()} (the header has {len(columns)} tab-separated "
                            f"columns).") from err
    if frame.empty:
        raise DataFileError(f"{inter_file} has a header but no interactions: line 2 onwards must hold one "
                            f"interaction per line.")
    for position, (name, kind) in enumerate(columns.items()):
        if kind != "float":
            continue
        column = frame.iloc[:, position]
        bad = pd.to_numeric(column, errors="coerce").isna().to_numpy().nonzero()[0]
        if bad.size:
            row = int(bad[0])
            raise DataFileError(f"{inter_file} line {row + 2}: {name} {column.iloc[row]!r} is not a number "
                                f"({name}:{kind} columns hold numbers).")
    return list(columns)


def user_load_columns(config, inter_file: Path, given_keys: set[str]) -> None:
    """Load every column of a user's file when the user's settings name none (``load_col``)."""
    if "load_col" in given_keys:
        return
    columns = check_inter_file(inter_file, config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["TIME_FIELD"])
    config["load_col"] = {"inter": columns}
